//! Just enough of the Redis protocol to ask a test server a question, with std alone: the
//! fixtures must not depend on the client library whose behaviour the tests check.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and the like.
    Status(String),
    /// `-ERR …`.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$…`: a string, or nil.
    Bulk(Option<String>),
    /// `*…`: an array, or nil.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or a non-nil bulk string.
    pub fn text(&self) -> Option<&str> {
        match self {
            Reply::Status(s) | Reply::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    /// The elements of a non-nil array.
    pub fn items(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(Some(items)) => Some(items),
            _ => None,
        }
    }
}

/// Sends one command to the server on 127.0.0.1:`port` over a new connection and reads the
/// reply (an error reply is a `Reply::Error`, not an `Err`).
pub fn query(port: u16, args: &[&str]) -> io::Result<Reply> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    stream.write_all(&out)?;
    read(&mut BufReader::new(stream))
}

fn read(input: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad reply {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    let number = || rest.parse::<i64>().map_err(|_| bad());
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut bytes = vec![0; len + 2];
                input.read_exact(&mut bytes)?;
                bytes.truncate(len);
                Reply::Bulk(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Array(None),
            Ok(len) => Reply::Array(Some(
                (0..len).map(|_| read(input)).collect::<io::Result<_>>()?,
            )),
        },
        _ => return Err(bad()),
    })
}

/// The `field:value` lines of an INFO-style text (CLUSTER INFO, INFO replication).
pub fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// A field of a flat `[name, value, name, value, …]` array (SENTINEL MASTER).
pub fn pair<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .items()?
        .chunks_exact(2)
        .find_map(|kv| (kv[0].text() == Some(name)).then(|| kv[1].text()).flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Reply {
        read(&mut text.as_bytes()).expect("parses")
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(parse("+OK\r\n"), Reply::Status("OK".into()));
        assert_eq!(parse("-ERR no\r\n"), Reply::Error("ERR no".into()));
        assert_eq!(parse(":-3\r\n"), Reply::Int(-3));
        assert_eq!(parse("$-1\r\n"), Reply::Bulk(None));
        assert_eq!(parse("*-1\r\n"), Reply::Array(None));
        let r = parse("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n");
        assert_eq!(r.items().map(|i| i[1].text()), Some(Some("6379")));
        assert_eq!(pair(&r, "127.0.0.1"), Some("6379"));
        assert_eq!(field("a:1\r\nb:ok\r\n", "b"), Some("ok"));
    }
}
