//! Screening what arrives on the response topic: only a message that can
//! be an answer (this panel's topic, not retained, 16 bytes of Correlation
//! Data) goes on to the correlation table; everything else is ignored and
//! logged at a bounded rate.

use std::fmt;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Publish;

use crate::protocol::{CORRELATION_LEN, CorrelationId};

/// Why a message is not an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NotAnAnswer {
    /// Not this panel's response topic.
    ForeignTopic(String),
    /// Retained: stale by definition, never an answer to a request.
    Retained,
    /// No Correlation Data.
    NoCorrelation,
    /// Correlation Data of another length than this panel sends.
    CorrelationLength(usize),
}

impl fmt::Display for NotAnAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAnAnswer::ForeignTopic(topic) => write!(f, "message on foreign topic {topic:?}"),
            NotAnAnswer::Retained => {
                f.write_str("retained message on the response topic (stale, not an answer)")
            }
            NotAnAnswer::NoCorrelation => f.write_str("response without correlation data"),
            NotAnAnswer::CorrelationLength(len) => write!(
                f,
                "correlation data of {len} bytes (this panel sends {CORRELATION_LEN})"
            ),
        }
    }
}

/// The correlation id of a message that may answer a request.
pub(super) fn screen(
    publish: &Publish,
    response_topic: &str,
) -> Result<CorrelationId, NotAnAnswer> {
    if publish.topic.as_ref() != response_topic.as_bytes() {
        return Err(NotAnAnswer::ForeignTopic(
            String::from_utf8_lossy(&publish.topic).into_owned(),
        ));
    }
    if publish.retain {
        return Err(NotAnAnswer::Retained);
    }
    let correlation = publish
        .properties
        .as_ref()
        .and_then(|p| p.correlation_data.as_ref())
        .ok_or(NotAnAnswer::NoCorrelation)?;
    CorrelationId::from_bytes(correlation).ok_or(NotAnAnswer::CorrelationLength(correlation.len()))
}

/// Counts ignored messages and logs them at a bounded rate, so a flood of
/// garbage cannot flood the log (or the event stream).
#[derive(Default)]
pub(super) struct IgnoredLog {
    /// Start of the current one-second window.
    window: Option<Instant>,
    /// Lines logged in the window.
    logged: u32,
    /// Messages ignored but not logged in the window.
    suppressed: u64,
    /// Messages ignored since the last summary.
    unreported: u64,
    /// When the last summary went out.
    reported: Option<Instant>,
}

impl IgnoredLog {
    const PER_SECOND: u32 = 10;

    /// Notes one ignored message; returns the summary to send as an event,
    /// at most one a second (later ones are counted into the next).
    pub fn note(&mut self, now: Instant, why: &dyn fmt::Display) -> Option<(u64, String)> {
        let second = Duration::from_secs(1);
        let fresh = self.window.is_none_or(|w| now.duration_since(w) >= second);
        if fresh {
            if self.suppressed > 0 {
                tracing::warn!("{} more ignored response(s) not logged", self.suppressed);
            }
            self.window = Some(now);
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged < Self::PER_SECOND {
            self.logged += 1;
            tracing::warn!("ignored response: {why}");
        } else {
            self.suppressed += 1;
        }
        self.unreported += 1;
        if self
            .reported
            .is_none_or(|r| now.duration_since(r) >= second)
        {
            self.reported = Some(now);
            return Some((std::mem::take(&mut self.unreported), why.to_string()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;

    fn publish(topic: &str, retain: bool, correlation: Option<&[u8]>) -> Publish {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, "1", None);
        p.retain = retain;
        p.properties = correlation.map(|c| PublishProperties {
            correlation_data: Some(Bytes::copy_from_slice(c)),
            ..Default::default()
        });
        p
    }

    /// Table: which messages may be answers.
    #[test]
    fn screening_table() {
        let ours = "relay-panel/desk/response";
        let id = [9u8; 16];
        let cases: [(Publish, Result<CorrelationId, NotAnAnswer>); 5] = [
            (publish(ours, false, Some(&id)), Ok(CorrelationId(id))),
            (
                publish("elsewhere", false, Some(&id)),
                Err(NotAnAnswer::ForeignTopic("elsewhere".into())),
            ),
            (publish(ours, true, Some(&id)), Err(NotAnAnswer::Retained)),
            (publish(ours, false, None), Err(NotAnAnswer::NoCorrelation)),
            (
                publish(ours, false, Some(&[1, 2, 3])),
                Err(NotAnAnswer::CorrelationLength(3)),
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(screen(&message, ours), expected, "{message:?}");
        }
        assert_eq!(
            NotAnAnswer::CorrelationLength(3).to_string(),
            "correlation data of 3 bytes (this panel sends 16)"
        );
    }

    /// A flood gives one summary a second, counting everything.
    #[test]
    fn summaries_are_rate_limited_and_count_everything() {
        let t0 = Instant::now();
        let mut log = IgnoredLog::default();
        let why = NotAnAnswer::NoCorrelation;
        assert_eq!(log.note(t0, &why).map(|s| s.0), Some(1));
        for ms in 1..1000 {
            assert!(log.note(t0 + Duration::from_millis(ms), &why).is_none());
        }
        let (count, reason) = log.note(t0 + Duration::from_secs(1), &why).unwrap();
        assert_eq!(count, 1000);
        assert_eq!(reason, "response without correlation data");
    }
}
