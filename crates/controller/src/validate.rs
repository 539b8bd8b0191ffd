//! The checks behind [`ControllerConfigBuilder::build`](crate::ControllerConfigBuilder::build).

use std::time::Duration;

use crate::config::TierSettings;
use crate::error::ConfigError;
use crate::types::ThrottleState;

/// The longest delay a tier may recommend.
const MAX_DELAY: Duration = Duration::from_secs(3_600);

pub(crate) fn check_range(
    field: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        let expected = match field {
            "window" => "from 1 ms to 1 day",
            "the monitoring cycle" => "from 1 ms to 60 s",
            "the scan interval" | "the high-load scan interval" => "more than 0",
            _ => "more than 0 and at most 1 day",
        };
        return Err(ConfigError::InvalidValue {
            field,
            value: format!("{value:?}"),
            expected,
        });
    }
    Ok(())
}

pub(crate) fn check_percent(field: &'static str, percent: u32) -> Result<(), ConfigError> {
    if percent == 0 || percent > 100 {
        return Err(ConfigError::InvalidValue {
            field,
            value: format!("{percent}%"),
            expected: "a percentage from 1 to 100",
        });
    }
    Ok(())
}

pub(crate) fn validate_tiers(tiers: &[TierSettings; 4]) -> Result<(), ConfigError> {
    let invalid = |tier: ThrottleState, reason: String| ConfigError::InvalidTier { tier, reason };
    let normal = &tiers[0];
    if normal.enter_at_percent != 0 || normal.exit_below_percent != 0 {
        return Err(invalid(
            ThrottleState::Normal,
            format!(
                "its thresholds must be 0 (it is the tier under all others), got enter at {}% \
                 and exit below {}%",
                normal.enter_at_percent, normal.exit_below_percent
            ),
        ));
    }
    for state in ThrottleState::ALL {
        let t = &tiers[state.index()];
        if t.speed_percent == 0 || t.speed_percent > 100 {
            return Err(invalid(
                state,
                format!("speed {}% is not from 1% to 100%", t.speed_percent),
            ));
        }
        if t.delay_min > t.delay_max || t.delay_max > MAX_DELAY {
            return Err(invalid(
                state,
                format!(
                    "delay range {:?}..={:?} must have min ≤ max ≤ 1 h",
                    t.delay_min, t.delay_max
                ),
            ));
        }
        if t.max_per_cycle == 0 {
            return Err(invalid(
                state,
                "max_per_cycle is 0: service would stop; the minimum is 1".to_string(),
            ));
        }
        if state == ThrottleState::Normal {
            continue;
        }
        let below = ThrottleState::ALL[state.index() - 1];
        let b = &tiers[below.index()];
        if t.enter_at_percent <= b.enter_at_percent || t.enter_at_percent > 100 {
            return Err(ConfigError::TiersOutOfOrder {
                tier: state,
                enter_at: t.enter_at_percent,
                below,
                below_enter_at: b.enter_at_percent,
            });
        }
        if t.exit_below_percent == 0 || t.exit_below_percent > t.enter_at_percent {
            return Err(invalid(
                state,
                format!(
                    "exit below {}% must be from 1% up to its entry threshold {}%",
                    t.exit_below_percent, t.enter_at_percent
                ),
            ));
        }
        if t.speed_percent > b.speed_percent {
            return Err(invalid(
                state,
                format!(
                    "speed {}% is above {below}'s {}%: a heavier tier cannot be faster",
                    t.speed_percent, b.speed_percent
                ),
            ));
        }
    }
    Ok(())
}
