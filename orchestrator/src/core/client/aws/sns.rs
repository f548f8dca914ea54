//! `AlertClient` on AWS SNS: each alert is published to one topic, its title as the subject.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Arn, AwsEnv, AwsError};
use crate::core::client::alert::{Alert, AlertClient, AlertError};

/// SNS' limit on a subject: fewer than 100 characters.
const MAX_SUBJECT_CHARS: usize = 99;
/// SNS' limit on a message: 256 KiB of UTF-8.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Longest topic name.
const MAX_TOPIC_NAME_LEN: usize = 256;
/// Error codes SNS answers for a missing topic.
pub(crate) const TOPIC_MISSING_CODES: &[&str] = &["NotFound", "NotFoundException"];

/// Which topic alerts go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    /// A topic ARN, used verbatim.
    Arn(String),
    /// A topic name (prefix applied); the ARN is looked up.
    Name(String),
}

impl TopicRef {
    /// From `--topic-identifier` and `--aws-prefix`: an ARN, or `{prefix}_{name}`.
    ///
    /// # Errors
    /// A malformed ARN, or a name SNS does not accept.
    pub fn new(identifier: &str, prefix: Option<&str>) -> Result<Self, AwsError> {
        if identifier.starts_with("arn:") {
            let arn = Arn::parse(identifier, "sns")?;
            validate_topic_name(&arn.resource)?;
            return Ok(Self::Arn(identifier.to_owned()));
        }
        let name = match prefix {
            Some(p) if !p.is_empty() => format!("{p}_{identifier}"),
            _ => identifier.to_owned(),
        };
        validate_topic_name(&name)?;
        Ok(Self::Name(name))
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Arn(arn) => arn.rsplit(':').next().unwrap_or(arn),
            Self::Name(name) => name,
        }
    }
}

/// Checks an SNS topic name: 1–256 ASCII letters, digits, `-` and `_` (a FIFO topic ends in
/// `.fifo`).
///
/// # Errors
/// A message naming the topic and what is wrong.
pub fn validate_topic_name(name: &str) -> Result<(), AwsError> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    if name.is_empty() || name.len() > MAX_TOPIC_NAME_LEN {
        return Err(AwsError::invalid(format!(
            "topic name {name:?} must be 1 to {MAX_TOPIC_NAME_LEN} characters long"
        )));
    }
    if let Some(bad) = base.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(AwsError::invalid(format!(
            "topic name {name:?} contains {bad:?}: only ASCII letters, digits, `-` and `_` are allowed"
        )));
    }
    Ok(())
}

/// Looks up the ARN of the topic named `name` (`None` if there is none).
///
/// # Errors
/// When SNS cannot be listed.
pub async fn find_topic_arn(
    client: &aws_sdk_sns::Client,
    name: &str,
) -> Result<Option<String>, AwsError> {
    let mut pages = client.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk(&e))?;
        for topic in page.topics.unwrap_or_default() {
            if let Some(arn) = topic.topic_arn {
                if arn.rsplit(':').next() == Some(name) {
                    return Ok(Some(arn));
                }
            }
        }
    }
    Ok(None)
}

/// A subject SNS accepts: no control characters or line breaks, fewer than 100 characters,
/// starting with a letter, digit or punctuation; never empty.
pub fn sanitize_subject(title: &str) -> String {
    let cleaned: String = title.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    let trimmed =
        collapsed.trim_start_matches(|c: char| !(c.is_alphanumeric() || c.is_ascii_punctuation()));
    let subject: String = if trimmed.chars().count() > MAX_SUBJECT_CHARS {
        let mut s: String = trimmed.chars().take(MAX_SUBJECT_CHARS - 1).collect();
        s.push('…');
        s
    } else {
        trimmed.to_owned()
    };
    if subject.is_empty() {
        "Orchestrator alert".to_owned()
    } else {
        subject
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Alerts published to an SNS topic.
#[derive(Clone)]
pub struct SnsAlerts {
    client: aws_sdk_sns::Client,
    topic: TopicRef,
    arn: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for SnsAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsAlerts").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl SnsAlerts {
    /// Alerts to `topic`.
    pub fn new(env: &AwsEnv, topic: TopicRef) -> Self {
        let arn = match &topic {
            TopicRef::Arn(arn) => Some(arn.clone()),
            TopicRef::Name(_) => None,
        };
        Self { client: env.sns(), topic, arn: Arc::new(Mutex::new(arn)) }
    }

    /// The topic's ARN (looked up once by name).
    ///
    /// # Errors
    /// `TopicNotFound` naming the topic, `Unavailable` when SNS cannot be reached.
    pub async fn topic_arn(&self) -> Result<String, AlertError> {
        if let Some(arn) = self.lock_arn().clone() {
            return Ok(arn);
        }
        let name = self.topic.name();
        let arn = find_topic_arn(&self.client, name)
            .await
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| AlertError::TopicNotFound(name.to_owned()))?;
        *self.lock_arn() = Some(arn.clone());
        Ok(arn)
    }

    fn lock_arn(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Holds a plain string: a panic while holding the lock cannot leave it torn.
        self.arn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fail(&self, e: AwsError) -> AlertError {
        let name = self.topic.name();
        if e.is_code(TOPIC_MISSING_CODES) {
            if matches!(self.topic, TopicRef::Name(_)) {
                *self.lock_arn() = None;
            }
            AlertError::TopicNotFound(name.to_owned())
        } else if e.retryable {
            AlertError::Unavailable(format!("topic {name}: {e}").into())
        } else {
            AlertError::other(format!("topic {name}: {e}"))
        }
    }
}

#[async_trait]
impl AlertClient for SnsAlerts {
    async fn send_alert(&self, alert: &Alert) -> Result<(), AlertError> {
        let arn = self.topic_arn().await?;
        let text = alert.text();
        self.client
            .publish()
            .topic_arn(arn)
            .subject(sanitize_subject(&alert.title))
            .message(truncate_bytes(&text, MAX_MESSAGE_BYTES))
            .send()
            .await
            .map_err(|e| self.fail(AwsError::from_sdk(&e)))?;
        Ok(())
    }

    async fn health_check(&self) -> Result<(), AlertError> {
        let arn = self.topic_arn().await?;
        self.client
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .map_err(|e| self.fail(AwsError::from_sdk(&e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use aws_sdk_sqs::types::QueueAttributeName;
    use rstest::rstest;

    use super::*;
    use crate::core::client::{
        alert::AlertSeverity,
        aws::test_support::{moto_or_skip, unique_prefix},
        conformance::alert::AlertFactory,
    };

    #[rstest]
    #[case("alerts", None, Some("alerts"))]
    #[case("alerts", Some("dev"), Some("dev_alerts"))]
    #[case("arn:aws:sns:us-east-1:123456789012:ops", Some("dev"), Some("ops"))]
    #[case("bad name", None, None)]
    #[case("a.b", None, None)]
    fn topic_names(#[case] id: &str, #[case] prefix: Option<&str>, #[case] want: Option<&str>) {
        assert_eq!(TopicRef::new(id, prefix).ok().as_ref().map(TopicRef::name), want);
    }

    #[rstest]
    #[case("job failed", "job failed")]
    #[case("line\nbreak\tand\u{7}bell", "line break and bell")]
    #[case("  é unicode stays ✓", "é unicode stays ✓")]
    #[case("✓ symbols cannot start a subject", "symbols cannot start a subject")]
    #[case("", "Orchestrator alert")]
    #[case("\n\n", "Orchestrator alert")]
    fn subjects(#[case] title: &str, #[case] want: &str) {
        assert_eq!(sanitize_subject(title), want);
    }

    #[test]
    fn long_subjects_are_cut_below_100_characters() {
        let s = sanitize_subject(&"é".repeat(300));
        assert_eq!(s.chars().count(), MAX_SUBJECT_CHARS);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(200_000);
        let cut = truncate_bytes(&text, MAX_MESSAGE_BYTES);
        assert!(cut.len() <= MAX_MESSAGE_BYTES && cut.len() > MAX_MESSAGE_BYTES - 4);
    }

    /// A fresh topic per `alerts()` call, with an SQS queue subscribed (raw delivery) so the
    /// alerts can be read back.
    #[derive(Debug, Default)]
    struct SnsFactory {
        inbox: Mutex<Option<(aws_sdk_sqs::Client, String)>>,
        seen: Mutex<Vec<Alert>>,
    }

    #[async_trait]
    impl AlertFactory for SnsFactory {
        async fn alerts(&self) -> Arc<dyn AlertClient> {
            let env = moto_or_skip().await.expect("moto checked by the test");
            let prefix = unique_prefix();
            let topic = TopicRef::new("alerts", Some(&prefix)).expect("topic");
            let sns = env.sns();
            let topic_arn = sns
                .create_topic()
                .name(topic.name())
                .send()
                .await
                .expect("create topic")
                .topic_arn
                .expect("arn");
            let sqs = env.sqs();
            let url = sqs
                .create_queue()
                .queue_name(format!("{prefix}_inbox"))
                .send()
                .await
                .expect("create inbox")
                .queue_url
                .expect("url");
            let queue_arn = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .expect("inbox arn")
                .attributes
                .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
                .expect("QueueArn");
            sns.subscribe()
                .topic_arn(&topic_arn)
                .protocol("sqs")
                .endpoint(queue_arn)
                .attributes("RawMessageDelivery", "true")
                .send()
                .await
                .expect("subscribe the inbox");
            *self.inbox.lock().expect("inbox") = Some((sqs, url));
            self.seen.lock().expect("seen").clear();
            Arc::new(SnsAlerts::new(&env, topic))
        }

        async fn delivered(&self) -> Option<Vec<Alert>> {
            let (sqs, url) = self.inbox.lock().expect("inbox").clone()?;
            loop {
                let out = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .expect("receive");
                let messages = out.messages.unwrap_or_default();
                if messages.is_empty() {
                    break;
                }
                for m in messages {
                    let body = m.body.clone().unwrap_or_default();
                    self.seen.lock().expect("seen").push(parse_alert(&body));
                    if let Some(handle) = m.receipt_handle {
                        sqs.delete_message()
                            .queue_url(&url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .expect("delete");
                    }
                }
            }
            Some(self.seen.lock().expect("seen").clone())
        }
    }

    /// Inverts `Alert::text`: `[SEVERITY] title\nbody`.
    fn parse_alert(text: &str) -> Alert {
        let (first, body) = text.split_once('\n').unwrap_or((text, ""));
        let (severity, title) = first.split_once("] ").expect("severity tag");
        let severity = match severity.trim_start_matches('[') {
            "CRITICAL" => AlertSeverity::Critical,
            _ => AlertSeverity::Warning,
        };
        Alert { severity, title: title.to_owned(), body: body.to_owned() }
    }

    crate::alert_conformance_tests!({
        if crate::core::client::aws::test_support::moto_or_skip().await.is_none() {
            return;
        }
        SnsFactory::default()
    });

    #[tokio::test]
    async fn a_missing_topic_is_named() {
        let Some(env) = moto_or_skip().await else {
            return;
        };
        let topic = TopicRef::new("nothing", Some(&unique_prefix())).expect("topic");
        let a = SnsAlerts::new(&env, topic.clone());
        let alert = Alert { severity: AlertSeverity::Warning, title: "t".into(), body: "b".into() };
        match a.send_alert(&alert).await {
            Err(AlertError::TopicNotFound(name)) => assert_eq!(name, topic.name()),
            other => panic!("{other:?}"),
        }
    }
}
