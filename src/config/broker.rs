//! Reading `[broker]`: the URL into an address, the password from its source.
//!
//! Both are used twice: by [`Config::validate`](super::Config::validate)
//! (the URL must parse before the file is accepted) and by
//! `mqtt::client_options` when connecting. Their errors are the words a
//! technician reads in the settings window, the panel and relayctl.

use std::path::PathBuf;

use super::BrokerConfig;

/// Whether the broker connection uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `mqtt://`, plain TCP.
    Plain,
    /// `mqtts://`, TLS through rustls.
    Tls,
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Plain or TLS.
    pub scheme: Scheme,
    /// Host name or address.
    pub host: String,
    /// TCP port (1883 / 8883 when the URL names none).
    pub port: u16,
}

/// Why a broker URL is unusable. Each message quotes the URL as written.
///
/// The URL parser's own error is part of the message, not a
/// [`source`](std::error::Error::source): callers printing the whole chain
/// (`{:#}`) would otherwise show it twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all (no scheme, spaces, a bad port…).
    #[error("broker url {url:?} is not a URL ({reason}); write it like \"mqtt://127.0.0.1:1883\"")]
    NotAUrl {
        /// The URL as written.
        url: String,
        /// What the URL parser said.
        reason: url::ParseError,
    },
    /// A scheme other than MQTT's (`http://`, say).
    #[error("broker url {url:?} has scheme {scheme:?}; use mqtt:// or mqtts:// (TLS)")]
    Scheme {
        /// The URL as written.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// `mqtt://` with nothing after it.
    #[error("broker url {url:?} names no host")]
    NoHost {
        /// The URL as written.
        url: String,
    },
    /// Something after `host:port`; MQTT has no paths.
    #[error("broker url {url:?} has a path ({path:?}); MQTT URLs are only scheme://host:port")]
    Path {
        /// The URL as written.
        url: String,
        /// The path found.
        path: String,
    },
}

/// Parses `mqtt://host[:port]` or `mqtts://host[:port]`.
pub fn parse_broker_url(url: &str) -> Result<BrokerAddress, UrlError> {
    let parsed = url::Url::parse(url.trim()).map_err(|reason| UrlError::NotAUrl {
        url: url.to_owned(),
        reason,
    })?;
    let scheme = match parsed.scheme() {
        "mqtt" | "tcp" => Scheme::Plain,
        "mqtts" | "ssl" | "tls" => Scheme::Tls,
        other => {
            return Err(UrlError::Scheme {
                url: url.to_owned(),
                scheme: other.to_owned(),
            });
        }
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| UrlError::NoHost {
            url: url.to_owned(),
        })?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if !(parsed.path().is_empty() || parsed.path() == "/") {
        return Err(UrlError::Path {
            url: url.to_owned(),
            path: parsed.path().to_owned(),
        });
    }
    let port = parsed.port().unwrap_or(match scheme {
        Scheme::Plain => 1883,
        Scheme::Tls => 8883,
    });
    Ok(BrokerAddress { scheme, host, port })
}

/// Why the broker password could not be read. Messages name the variable
/// or file, never the password.
///
/// The OS error is part of the message, not a
/// [`source`](std::error::Error::source), so `{:#}` chains show it once.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// `password_env` names a variable that is not set (or not UTF-8).
    #[error("password_env names {name:?}, but that environment variable is not set")]
    EnvUnset {
        /// The variable's name.
        name: String,
    },
    /// `password_file` cannot be read.
    #[error("cannot read password_file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: std::io::Error,
    },
}

impl BrokerConfig {
    /// The password from `password`, `password_env` or `password_file`.
    pub fn resolve_password(&self) -> Result<Option<String>, PasswordError> {
        if let Some(name) = &self.password_env {
            return std::env::var(name)
                .map(Some)
                .map_err(|_| PasswordError::EnvUnset { name: name.clone() });
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|reason| PasswordError::File {
                path: path.clone(),
                reason,
            })?;
            return Ok(Some(text.lines().next().unwrap_or("").to_owned()));
        }
        Ok(self.password.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broker URLs get default ports and TLS detection.
    #[test]
    fn broker_urls() {
        let a = parse_broker_url("mqtt://10.0.0.1").unwrap();
        assert_eq!(
            (a.scheme, a.host.as_str(), a.port),
            (Scheme::Plain, "10.0.0.1", 1883)
        );
        let a = parse_broker_url("mqtts://broker.example:9000").unwrap();
        assert_eq!(
            (a.scheme, a.host.as_str(), a.port),
            (Scheme::Tls, "broker.example", 9000)
        );
        assert_eq!(parse_broker_url("mqtts://b").unwrap().port, 8883);
        assert!(parse_broker_url("mqtt://h/path").is_err());
        assert!(parse_broker_url("mqtt://").is_err());
    }

    /// Each URL error reads exactly as the `String` messages before the
    /// typed errors did (technicians and scripts know these words).
    #[test]
    fn url_errors_keep_their_words() {
        let cases = [
            (
                "not a url",
                "broker url \"not a url\" is not a URL (relative URL without a base); write it like \"mqtt://127.0.0.1:1883\"",
            ),
            (
                "http://h",
                "broker url \"http://h\" has scheme \"http\"; use mqtt:// or mqtts:// (TLS)",
            ),
            ("mqtt://", "broker url \"mqtt://\" names no host"),
            (
                "mqtt://h/path",
                "broker url \"mqtt://h/path\" has a path (\"/path\"); MQTT URLs are only scheme://host:port",
            ),
        ];
        for (url, message) in cases {
            let error = parse_broker_url(url).unwrap_err();
            assert_eq!(error.to_string(), message);
            // As with the old `String`, `{:#}` chains show the reason once.
            assert!(std::error::Error::source(&error).is_none());
        }
    }

    /// Password errors name the variable or the file, in the old words.
    #[test]
    fn password_errors_keep_their_words() {
        let mut broker = crate::config::Config::new("mqtt://h").broker;
        broker.password_env = Some("RELAY_PANEL_TEST_SURELY_UNSET".into());
        assert_eq!(
            broker.resolve_password().unwrap_err().to_string(),
            "password_env names \"RELAY_PANEL_TEST_SURELY_UNSET\", but that environment variable is not set"
        );
        broker.password_env = None;
        broker.password_file = Some("/nonexistent/relay-panel-password".into());
        let error = broker.resolve_password().unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read password_file /nonexistent/relay-panel-password: No such file or directory (os error 2)"
        );
        assert!(std::error::Error::source(&error).is_none());
    }
}
