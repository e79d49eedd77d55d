//! The report as one self-contained HTML page: an inline SVG chart (green's share as steps, each
//! variant's error rate and p99 latency, red bands while a watched alarm was in ALARM, and a
//! marker for every transition with its cause on hover), then the summary and the timeline as
//! text. No script, no stylesheet or font from anywhere else: it opens without a network.
//!
//! The chart is the page's first element, at its top left, one SVG unit to a CSS pixel; each
//! panel carries its place (`data-top`, `data-height`, `data-left`, `data-width`) and each line
//! its series (`data-series`, `data-points`), so that a test can find both in a screenshot.

use html_escape::{encode_double_quoted_attribute as attr, encode_text as esc};

use crate::operate::{duration, utc};
use crate::report::{Band, Panel, Report, Series, Side};

pub const WIDTH: i64 = 1_100;
const LEFT: i64 = 80;
const RIGHT: i64 = 30;
const HEADER: i64 = 84;
const PANEL_HEIGHT: i64 = 170;
const GAP: i64 = 46;
const AXIS: i64 = 40;

pub const BLUE: &str = "#1d4ed8";
pub const GREEN: &str = "#15803d";
pub const ALARM: &str = "#dc2626";

struct Frame {
    from: i64,
    to: i64,
    /// The metrics' period, in ms.
    period_ms: i64,
}

impl Frame {
    fn x(&self, at: i64) -> f64 {
        let span = (self.to - self.from).max(1) as f64;
        LEFT as f64 + (at - self.from) as f64 / span * (WIDTH - LEFT - RIGHT) as f64
    }
}

fn panels() -> [(Panel, &'static str, &'static str); 3] {
    [
        (Panel::Share, "share", "green's share of requests (%)"),
        (Panel::Errors, "errors", "5xx errors / requests (%)"),
        (Panel::Latency, "latency", "p99 model latency (ms)"),
    ]
}

fn top_of(index: usize) -> i64 {
    HEADER + index as i64 * (PANEL_HEIGHT + GAP)
}

/// The chart's height.
pub fn height() -> i64 {
    top_of(panels().len()) - GAP + AXIS
}

/// A round upper bound for the y axis: 1, 2 or 5 times a power of ten.
fn nice_max(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|m| *m >= value)
        .unwrap_or(10.0 * power)
}

fn colour(side: Side) -> &'static str {
    match side {
        Side::Blue => BLUE,
        Side::Green => GREEN,
    }
}

/// A tick every 1, 2 or 5 times a power of ten seconds (or 15 s, 30 s, minutes), about eight
/// across.
fn tick_secs(span_secs: i64) -> i64 {
    [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 21_600,
    ]
    .into_iter()
    .find(|t| span_secs / t <= 10)
    .unwrap_or(86_400)
}

/// A series' SVG path. A line joins the points at their periods' middles; a series with one
/// point (green served for a single period before a rollback) is drawn across that period, so
/// that it shows as a line rather than an invisible lone point.
fn path(series: &Series, f: &Frame, y: &dyn Fn(f64) -> f64) -> String {
    if let ([(at, v)], false) = (series.points.as_slice(), series.steps) {
        let half = f.period_ms / 2;
        let py = y(*v);
        return format!(
            "M{:.1},{py:.1} L{:.1},{py:.1}",
            f.x(at - half),
            f.x(at + half)
        );
    }
    let mut d = String::new();
    let mut last_y = None;
    for (i, (at, v)) in series.points.iter().enumerate() {
        let (px, py) = (f.x(*at), y(*v));
        if i == 0 {
            d.push_str(&format!("M{px:.1},{py:.1}"));
        } else if series.steps {
            d.push_str(&format!(
                " L{px:.1},{:.1} L{px:.1},{py:.1}",
                last_y.unwrap_or(py)
            ));
        } else {
            d.push_str(&format!(" L{px:.1},{py:.1}"));
        }
        last_y = Some(py);
    }
    d
}

fn panel_svg(
    out: &mut String,
    index: usize,
    panel: Panel,
    key: &str,
    title: &str,
    report: &Report,
    f: &Frame,
) {
    let top = top_of(index);
    let bottom = top + PANEL_HEIGHT;
    let width = WIDTH - LEFT - RIGHT;
    let series: Vec<&Series> = report.series.iter().filter(|s| s.panel == panel).collect();
    let max = match panel {
        Panel::Share => 100.0,
        _ => nice_max(
            series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .fold(0.0, f64::max)
                * 1.1,
        ),
    };
    let y = |v: f64| bottom as f64 - (v / max).clamp(0.0, 1.0) * PANEL_HEIGHT as f64;
    out.push_str(&format!(
        "<g class=\"panel\" id=\"panel-{key}\" data-top=\"{top}\" data-height=\"{PANEL_HEIGHT}\" \
         data-left=\"{LEFT}\" data-width=\"{width}\">\n"
    ));
    out.push_str(&format!(
        "<text class=\"panel-title\" x=\"{LEFT}\" y=\"{}\">{}</text>\n",
        top - 8,
        esc(title)
    ));
    out.push_str(&format!(
        "<rect class=\"frame\" x=\"{LEFT}\" y=\"{top}\" width=\"{width}\" height=\"{PANEL_HEIGHT}\"/>\n"
    ));
    for band in &report.bands {
        band_svg(out, band, f, top);
    }
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let py = y(v);
        out.push_str(&format!(
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            WIDTH - RIGHT,
            LEFT - 6,
            py + 4.0,
            trim(v)
        ));
    }
    let mut legend_x = LEFT + width;
    for s in series.iter().rev() {
        let dashed = if s.panel == Panel::Share && !s.steps {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let label = if s.points.is_empty() {
            format!("{} (no data)", s.label)
        } else {
            s.label.clone()
        };
        out.push_str(&format!(
            "<path class=\"series\" data-series=\"{}\" data-points=\"{}\" d=\"{}\" \
             stroke=\"{}\"{dashed}/>\n",
            attr(&s.id),
            s.points.len(),
            path(s, f, &y),
            colour(s.side)
        ));
        let text_width = 7 * label.chars().count() as i64 + 28;
        legend_x -= text_width;
        out.push_str(&format!(
            "<g class=\"legend\" data-series=\"{}\"><line x1=\"{legend_x}\" x2=\"{}\" y1=\"{}\" \
             y2=\"{}\" stroke=\"{}\"{dashed}/><text x=\"{}\" y=\"{}\">{}</text></g>\n",
            attr(&s.id),
            legend_x + 18,
            top - 12,
            top - 12,
            colour(s.side),
            legend_x + 22,
            top - 8,
            esc(&label)
        ));
    }
    out.push_str("</g>\n");
}

fn band_svg(out: &mut String, band: &Band, f: &Frame, top: i64) {
    let (x1, x2) = (f.x(band.from), f.x(band.to));
    out.push_str(&format!(
        "<rect class=\"alarm-band\" data-alarm=\"{}\" x=\"{x1:.1}\" y=\"{top}\" width=\"{:.1}\" \
         height=\"{PANEL_HEIGHT}\" fill=\"{ALARM}\"><title>{} in ALARM, {} to {}</title></rect>\n",
        attr(&band.alarm),
        (x2 - x1).max(1.0),
        esc(&band.alarm),
        utc(band.from),
        utc(band.to)
    ));
}

/// A value's name as our events spell it (`ROLLED_BACK`, `variant`).
fn word<T: serde::Serialize>(value: &T) -> String {
    guardrails::units::wire_name(value).unwrap_or_else(|| "-".to_owned())
}

/// `12`, `0.5`, `1.25`: no trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The page.
pub fn html(report: &Report) -> String {
    let f = Frame {
        from: report.from,
        to: report.to,
        period_ms: i64::from(report.period_secs) * 1_000,
    };
    let s = &report.shown.summary;
    let plan = &report.shown.plan;
    let height = height();
    let mut svg = format!(
        "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"deployment {} timeline\">\n",
        attr(&s.deployment_id)
    );
    svg.push_str(&format!(
        "<text class=\"title\" x=\"{LEFT}\" y=\"24\">{} on {}: {}</text>\n\
         <text class=\"subtitle\" x=\"{LEFT}\" y=\"44\">{} engine, model {}, started {}, \
         metrics every {} s</text>\n",
        esc(&s.deployment_id),
        esc(&s.endpoint_name),
        esc(&word(&s.state)),
        esc(&word(&s.engine)),
        esc(&s.model_name),
        utc(s.started_at),
        report.period_secs
    ));
    for (index, (panel, key, title)) in panels().into_iter().enumerate() {
        panel_svg(&mut svg, index, panel, key, title, report, &f);
    }
    // Transitions: a line through every panel, a marker above, the cause on hover.
    let last_bottom = top_of(panels().len() - 1) + PANEL_HEIGHT;
    for e in &report.shown.timeline {
        let x = f.x(e.time);
        let elapsed = duration(e.elapsed_ms / 1_000);
        let state = word(&e.state);
        svg.push_str(&format!(
            "<g class=\"transition\" data-state=\"{}\" data-sequence=\"{}\">\
             <line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{last_bottom}\"/>\
             <circle cx=\"{x:.1}\" cy=\"{}\" r=\"5\"/>\
             <title>t+{elapsed} {}: {}</title></g>\n",
            attr(&state),
            e.sequence,
            HEADER,
            HEADER,
            esc(&state),
            esc(&e.cause_text)
        ));
    }
    // The time axis, from the start of the deployment.
    let span_secs = (report.to - report.from) / 1_000;
    let tick = tick_secs(span_secs);
    let start = s.started_at;
    let mut t = -((start - report.from) / 1_000 / tick) * tick;
    while start + t * 1_000 <= report.to {
        let x = f.x(start + t * 1_000);
        if x >= LEFT as f64 {
            let label = if t < 0 {
                format!("-{}", duration(-t))
            } else {
                format!("t+{}", duration(t))
            };
            svg.push_str(&format!(
                "<text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
                last_bottom + 18
            ));
        }
        t += tick;
    }
    svg.push_str("</svg>\n");

    let mut rows = String::new();
    for e in &report.shown.timeline {
        let green = e
            .observed_green_percent
            .or(e.planned_green_percent)
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%"));
        rows.push_str(&format!(
            "<tr><td>t+{}</td><td>{}</td><td>{}</td><td>{green}</td><td>{}</td></tr>\n",
            duration(e.elapsed_ms / 1_000),
            utc(e.time),
            word(&e.state),
            esc(&e.cause_text)
        ));
    }
    let alarms: Vec<String> = plan
        .watched_alarm_names()
        .map(|a| format!("<code>{}</code>", esc(a)))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Guardrails: {id} on {endpoint}</title>\n<style>\n{STYLE}</style></head>\n<body>\n\
         {svg}<section>\n<p>{outcome}. Requested by <code>{by}</code>; {took}. Why it ended: {cause}.\
         </p>\n<p>Blue: <code>{blue}</code> ({blue_model}). Green: <code>{green}</code> \
         ({green_model}). Watched alarms: {alarms}.</p>\n<table>\n<thead><tr><th>elapsed</th>\
         <th>time</th><th>state</th><th>green</th><th>cause</th></tr></thead>\n<tbody>\n{rows}\
         </tbody></table>\n</section>\n</body></html>\n",
        id = esc(&s.deployment_id),
        endpoint = esc(&s.endpoint_name),
        outcome = esc(&word(&s.state)),
        by = esc(s.requested_by.as_deref().unwrap_or("-")),
        took = s.duration_secs.map_or_else(
            || "still running".to_owned(),
            |d| format!("took {}", duration(d))
        ),
        cause = esc(s.cause.trim_end_matches('.')),
        blue = esc(&plan.blue.variant_name),
        blue_model = esc(&plan.blue.model_name),
        green = esc(&plan.green.variant_name),
        green_model = esc(&plan.green.model_name),
        alarms = if alarms.is_empty() {
            "none".to_owned()
        } else {
            alarms.join(", ")
        },
    )
}

const STYLE: &str = "body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #111827; }
svg { display: block; }
svg text { font: 12px system-ui, sans-serif; fill: #374151; }
svg .title { font-size: 17px; font-weight: 600; fill: #111827; }
svg .panel-title { font-weight: 600; }
.frame { fill: none; stroke: #9ca3af; }
.grid { stroke: #e5e7eb; }
.series { fill: none; stroke-width: 2.5; stroke-linejoin: round; }
.alarm-band { fill-opacity: 0.16; }
.transition line { stroke: #374151; stroke-opacity: 0.35; stroke-dasharray: 2 3; }
.transition circle { fill: #374151; }
.transition:hover circle { r: 8; }
.transition:hover line { stroke-opacity: 1; }
section { padding: 0 80px 24px; max-width: 990px; }
table { border-collapse: collapse; }
td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
td:nth-child(-n+4) { white-space: nowrap; }
code { font-size: 13px; }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_to_readable_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(0.37), 0.5);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(51.0), 100.0);
        assert_eq!(trim(12.5), "12.5");
        assert_eq!(trim(25.0), "25");
        assert_eq!(tick_secs(60), 10);
        assert_eq!(tick_secs(3_600), 600);
    }

    #[test]
    fn a_lone_datapoint_is_drawn_across_its_period() {
        let f = Frame {
            from: 0,
            to: 10_000,
            period_ms: 1_000,
        };
        let mut lone = Series {
            id: "green-error-rate".to_owned(),
            label: String::new(),
            panel: Panel::Errors,
            side: Side::Green,
            steps: false,
            points: vec![(5_500, 30.0)],
        };
        let y = |v: f64| 100.0 - v;
        // 99 px a second from x = 80: the period [5 s, 6 s).
        assert_eq!(path(&lone, &f, &y), "M575.0,70.0 L674.0,70.0");
        lone.points.push((6_500, 10.0));
        assert_eq!(path(&lone, &f, &y), "M624.5,70.0 L723.5,90.0");
    }
}
