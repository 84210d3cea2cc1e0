//! Connection errors in words a technician can act on, and which of them
//! are certain to happen again (the only ones that stop the retrying).

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, DisconnectReasonCode};
use rumqttc::v5::{ConnectionError, StateError};

use super::CONNECT_TIMEOUT;

/// No CONNACK within the connection timeout: tell an unreachable host from
/// a broker that took the TCP connection and never answered the MQTT 5
/// CONNECT (an MQTT 3.1.1-only broker may do just that).
pub(super) async fn diagnose_timeout((host, port): &(String, u16)) -> String {
    let waited = CONNECT_TIMEOUT.as_secs();
    let probe = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect((host.as_str(), *port)),
    )
    .await;
    match probe {
        Ok(Ok(_)) => format!(
            "broker {host}:{port} accepted the TCP connection but did not answer the MQTT 5 CONNECT within {waited} s: \
             it may not accept MQTT 5 (Relay Panel needs MQTT 5; a broker that speaks only MQTT 3.1.1 may not answer at all), \
             or it is overloaded"
        ),
        _ => format!(
            "broker {host}:{port} did not answer within {waited} s (no TCP connection: is the host reachable and the port right?)"
        ),
    }
}

/// Whether the broker (or the network) closed the connection: a reset, an
/// EOF, a broken pipe. Never certain to repeat.
pub(super) fn closed_before_handshake(error: &ConnectionError) -> bool {
    use std::io::ErrorKind::*;
    match io_error(error) {
        Some(e) => matches!(
            e.kind(),
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
        ),
        None => matches!(
            error,
            ConnectionError::MqttState(StateError::ConnectionAborted)
        ),
    }
}

/// The I/O error inside a connection error, wherever rumqttc put it (a
/// reset while reading the CONNACK arrives as a "deserialization" error).
fn io_error(error: &ConnectionError) -> Option<&std::io::Error> {
    use rumqttc::v5::mqttbytes::Error as PacketError;
    match error {
        ConnectionError::Io(e)
        | ConnectionError::MqttState(StateError::Io(e))
        | ConnectionError::MqttState(StateError::Deserialization(PacketError::Io(e))) => Some(e),
        _ => None,
    }
}

/// A technician-readable reason for a connection error, and whether
/// retrying is pointless.
pub(super) fn describe(
    error: &ConnectionError,
    (host, port): &(String, u16),
    client_id: &str,
    was_connected: bool,
) -> (String, bool) {
    let broker = format!("{host}:{port}");
    if let Some(e) = io_error(error) {
        return (describe_io(e, &broker, host, was_connected), false);
    }
    match error {
        ConnectionError::ConnectionRefused(code) => {
            let (what, fatal) = match code {
                ConnectReturnCode::UnsupportedProtocolVersion
                | ConnectReturnCode::RefusedProtocolVersion => (
                    "does not accept MQTT 5 (Relay Panel needs MQTT 5 for request/response)"
                        .to_owned(),
                    true,
                ),
                ConnectReturnCode::BadUserNamePassword => (
                    "refused the user name or password; check username/password in [broker]"
                        .to_owned(),
                    true,
                ),
                ConnectReturnCode::NotAuthorized | ConnectReturnCode::Banned => (
                    format!(
                        "refused this client ({code:?}): the user name or password is wrong, or this user may not connect; check username/password in [broker] and the broker's ACL"
                    ),
                    true,
                ),
                ConnectReturnCode::ClientIdentifierNotValid | ConnectReturnCode::BadClientId => {
                    (format!("refused the client id {client_id:?}"), true)
                }
                ConnectReturnCode::BadAuthenticationMethod => {
                    ("refused the authentication method".to_owned(), true)
                }
                other => (format!("refused the connection ({other:?})"), false),
            };
            (format!("broker {broker} {what}"), fatal)
        }
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => {
            let detail = reason_string
                .as_deref()
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            match reason_code {
                DisconnectReasonCode::SessionTakenOver => (
                    format!(
                        "another client connected with the same client id {client_id:?} and took over the session; \
                         not reconnecting (two panels with one client id would throw each other off). \
                         Give each panel its own client_id, or remove it from [broker]"
                    ),
                    true,
                ),
                DisconnectReasonCode::NotAuthorized => (
                    format!("broker {broker} disconnected this client: not authorised{detail}"),
                    true,
                ),
                other => (
                    format!("broker {broker} disconnected this client ({other:?}){detail}"),
                    false,
                ),
            }
        }
        ConnectionError::MqttState(StateError::IncomingPacketTooLarge { pkt_size, max }) => {
            (oversized(&broker, *pkt_size, *max as u64), false)
        }
        // What rumqttc reports when a packet's header announces more than
        // the maximum: the panel asks brokers for at most that (CONNECT's
        // Maximum Packet Size), and Mosquitto drops larger messages, but
        // ejabberd 23.01 ignores the limit and delivers them.
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded { pkt_size, max },
        )) => (oversized(&broker, *pkt_size, u64::from(*max)), false),
        ConnectionError::MqttState(StateError::ConnectionAborted) if !was_connected => (
            format!(
                "broker {broker} closed the connection before answering the MQTT 5 CONNECT \
                 (restarting, full, or it rejects this client or MQTT 5)"
            ),
            false,
        ),
        ConnectionError::NotConnAck(_)
        | ConnectionError::MqttState(StateError::Deserialization(_))
            if !was_connected =>
        {
            (
                format!(
                    "broker {broker} answered CONNECT with something that is not an MQTT 5 CONNACK: it does not speak MQTT 5"
                ),
                true,
            )
        }
        // Replaced by `diagnose_timeout`, which probes the port.
        ConnectionError::Timeout(_) => (
            format!(
                "broker {broker} did not answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
            false,
        ),
        ConnectionError::Tls(e) => describe_tls(e, &broker),
        other => (
            format!("connection to broker {broker} lost: {other}"),
            false,
        ),
    }
}

/// A message over the size this client accepts: the connection is closed
/// (rumqttc cannot skip a packet), never certain to repeat.
fn oversized(broker: &str, size: usize, max: u64) -> String {
    format!(
        "broker {broker} delivered a message of {size} bytes, over the {max} bytes this panel accepts \
         (the panel asks the broker for at most that; this broker ignored it), so the connection was closed \
         and is made again; if it was a device's answer, that device answers with too much to ever be confirmed"
    )
}

/// An I/O failure in words; never certain to repeat.
fn describe_io(e: &std::io::Error, broker: &str, host: &str, was_connected: bool) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => format!(
            "cannot connect to broker {broker}: connection refused (is the broker running and is the URL right?)"
        ),
        ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
            if !was_connected =>
        {
            format!(
                "broker {broker} closed the connection before answering the MQTT 5 CONNECT \
                 (restarting, full, or it rejects this client or MQTT 5)"
            )
        }
        _ if e.to_string().contains("failed to lookup")
            || e.to_string().contains("Name or service") =>
        {
            format!("cannot resolve broker host {host:?}: {e}")
        }
        _ => format!("connection to broker {broker} lost: {e}"),
    }
}

/// A TLS failure in words, and whether it is certain to repeat: a
/// certificate the client rejects (or bad key material) is; a reset or
/// EOF during the handshake (a restarting broker) is not.
fn describe_tls(error: &rumqttc::TlsError, broker: &str) -> (String, bool) {
    let text = error.to_string();
    // rustls words these differently across versions ("UnknownIssuer",
    // "unknown issuer"; "Expired", "certificate expired"), and tokio-rustls
    // wraps them in an I/O error: read the text.
    let folded = text.to_lowercase().replace([' ', '_'], "");
    let hint = if folded.contains("unknownissuer") {
        Some("the broker's certificate is not signed by ca_file")
    } else if folded.contains("expired") {
        Some("the broker's certificate has expired (or the clock is wrong)")
    } else if folded.contains("notvalidyet") {
        Some("the broker's certificate is not valid yet (or the clock is wrong)")
    } else if folded.contains("notvalidforname") {
        Some("the broker's certificate does not name the host in the broker url")
    } else if folded.contains("novalidca") {
        Some("ca_file holds no PEM certificate")
    } else if folded.contains("clientauthentication") || folded.contains("novalidkey") {
        Some("client_cert / client_key are not a valid PEM certificate and key")
    } else if folded.contains("invalidpeercertificate") || folded.contains("badcertificate") {
        Some("the certificate was rejected")
    } else {
        None
    };
    match hint {
        Some(hint) => (
            format!("TLS with broker {broker} failed: {hint} ({text})"),
            true,
        ),
        None => (
            format!("TLS connection to broker {broker} failed ({text}); retrying"),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message over the panel's maximum packet size, delivered by a
    /// broker that ignores the limit (ejabberd 23.01), reads as such, with
    /// both sizes, and is retried: the next connection works.
    #[test]
    fn an_oversized_message_says_so_and_is_retried() {
        let error = ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::v5::mqttbytes::Error::PayloadSizeLimitExceeded {
                pkt_size: 1_048_631,
                max: 65_536,
            },
        ));
        let (reason, fatal) = describe(&error, &("127.0.0.1".into(), 1883), "panel", true);
        assert!(!fatal);
        assert!(
            reason.starts_with(
                "broker 127.0.0.1:1883 delivered a message of 1048631 bytes, over the 65536 bytes"
            ),
            "{reason}"
        );
    }
}
