//! Store URLs: every accepted form, and errors that quote the URL with its password masked.

use tollgate_redis::{Node, RedisConfig, RedisUrl, Topology};

fn node(host: &str, port: u16) -> Node {
    Node {
        host: host.to_string(),
        port,
    }
}

fn parse(url: &str) -> RedisUrl {
    match RedisUrl::parse(url) {
        Ok(u) => u,
        Err(e) => panic!("{url} should parse: {e}"),
    }
}

#[test]
fn standalone_urls() {
    let u = parse("redis://127.0.0.1:6380/3");
    assert_eq!(
        u.topology(),
        &Topology::Standalone {
            node: node("127.0.0.1", 6380),
            db: 3
        }
    );
    assert!(!u.tls());
    assert_eq!((u.username(), u.password()), (None, None));

    let u = parse("redis://cache.internal");
    assert_eq!(
        u.topology(),
        &Topology::Standalone {
            node: node("cache.internal", 6379),
            db: 0
        }
    );

    let u = parse("rediss://alice:p%40ss:w%2Fd@[::1]:6390/");
    assert!(u.tls());
    assert_eq!(u.username(), Some("alice"));
    assert_eq!(u.password(), Some("p@ss:w/d"), "percent-decoded");
    assert_eq!(
        u.topology(),
        &Topology::Standalone {
            node: node("::1", 6390),
            db: 0
        }
    );
    assert_eq!(u.to_string(), "rediss://alice:****@[::1]:6390/0");

    let u = parse("redis://:secret@h:1/0");
    assert_eq!((u.username(), u.password()), (None, Some("secret")));
    // An unencoded '@' in a password works too: the credentials end at the last '@'.
    assert_eq!(parse("redis://:a@b@h:1").password(), Some("a@b"));
}

#[test]
fn sentinel_and_cluster_urls() {
    let u = parse("redis+sentinel://u:p@s1:26380,s2,10.0.0.3:26381/mymaster/2");
    assert_eq!(
        u.topology(),
        &Topology::Sentinel {
            sentinels: vec![
                node("s1", 26380),
                node("s2", 26379),
                node("10.0.0.3", 26381)
            ],
            master: "mymaster".to_string(),
            db: 2
        }
    );
    assert_eq!(u.username(), Some("u"));
    assert_eq!(
        u.to_string(),
        "redis+sentinel://u:****@s1:26380,s2:26379,10.0.0.3:26381/mymaster/2"
    );
    let u = parse("redis+sentinel://s1:1/m");
    assert!(matches!(u.topology(), Topology::Sentinel { db: 0, .. }));

    let u = parse("redis+cluster://:pw@n1:7000,n2:7001,n3");
    assert_eq!(
        u.topology(),
        &Topology::Cluster {
            nodes: vec![node("n1", 7000), node("n2", 7001), node("n3", 6379)]
        }
    );
    assert_eq!(u.password(), Some("pw"));
}

#[test]
fn bad_urls_say_what_was_expected_and_mask_the_password() {
    for (url, says) in [
        ("localhost:6379", "no scheme"),
        ("http://h:1", "unknown scheme"),
        ("redis://", "host is missing"),
        ("redis://h:0", "port \"0\""),
        ("redis://h:99999", "port \"99999\""),
        ("redis://h:12ab", "port \"12ab\""),
        ("redis://h/x", "database \"x\""),
        ("redis://h/1/2", "only the database"),
        ("redis://a:1,b:2", "one HOST:PORT"),
        ("redis://h?db=1", "query strings"),
        ("redis://user@h", "USER:PASSWORD@"),
        ("redis://:%zz@h", "percent-encoding"),
        ("redis://[::1:1", "unclosed '['"),
        ("redis+sentinel://s:1", "MASTER_NAME"),
        ("redis+sentinel://s:1//0", "master name is empty"),
        ("redis+cluster://n:1/0", "only database 0"),
        ("redis+cluster://n:1,,n:2", "host is missing"),
    ] {
        let err = RedisUrl::parse(url).expect_err(url);
        let text = err.to_string();
        assert!(text.contains(says), "{url}: {text}");
        assert!(text.contains("expected redis://"), "{url}: {text}");
        assert!(text.contains(&format!("{:?}", err.masked)), "{url}: {text}");
    }
    for (url, masked) in [
        ("redis://:hunter2@h:1/x", "redis://:****@h:1/x"),
        ("redis://bob:hunter2@h:1/x", "redis://bob:****@h:1/x"),
        ("redis://bob@hunter2@h:1?x", "redis://****@h:1?x"),
        ("ftp://bob:hunter2@h", "ftp://bob:****@h"),
    ] {
        let err = RedisUrl::parse(url).expect_err(url);
        assert_eq!(err.masked, masked);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[test]
fn a_config_has_default_timeouts() {
    let c = RedisConfig::parse("redis://h").expect("parses");
    assert_eq!(c.connect_timeout, RedisConfig::DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(c.command_timeout.as_millis(), 250);
    let c = c.command_timeout(std::time::Duration::from_millis(50));
    assert_eq!(c.command_timeout.as_millis(), 50);
    assert!(format!("{c:?}").contains("redis://h:6379/0"));
    let c = RedisConfig::parse("redis://:pw@h").expect("parses");
    assert!(
        !format!("{c:?}").contains("pw@"),
        "Debug masks the password"
    );
}
