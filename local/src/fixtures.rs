//! What the demo and the tests put into the local world besides endpoints: an alarm on the
//! 5xx error fraction of one endpoint variant, made through the real CloudWatch client.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};

/// An alarm on `Average Invocation5XXErrors` (the error fraction) of `endpoint`/`variant`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorAlarm<'a> {
    pub name: &'a str,
    pub endpoint: &'a str,
    pub variant: &'a str,
    pub period_secs: i32,
    pub threshold: f64,
    /// `GreaterThanOrEqualToThreshold` instead of `GreaterThanThreshold`.
    pub or_equal: bool,
}

/// PutMetricAlarm for `alarm`.
pub async fn put_error_alarm(
    client: &aws_sdk_cloudwatch::Client,
    alarm: &ErrorAlarm<'_>,
) -> Result<(), String> {
    let dimension = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
    let comparison = if alarm.or_equal {
        ComparisonOperator::GreaterThanOrEqualToThreshold
    } else {
        ComparisonOperator::GreaterThanThreshold
    };
    client
        .put_metric_alarm()
        .alarm_name(alarm.name)
        .namespace("AWS/SageMaker")
        .metric_name("Invocation5XXErrors")
        .dimensions(dimension("EndpointName", alarm.endpoint))
        .dimensions(dimension("VariantName", alarm.variant))
        .statistic(Statistic::Average)
        .period(alarm.period_secs)
        .evaluation_periods(1)
        .threshold(alarm.threshold)
        .comparison_operator(comparison)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("PutMetricAlarm {}: {e:?}", alarm.name))
}
