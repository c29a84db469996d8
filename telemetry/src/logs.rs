//! Log lines: human-readable text or one JSON object per line, each carrying the `trace_id` and
//! `span_id` of the span it was logged in when that span is traced, so a log line leads to its
//! trace in Jaeger and back.

use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use tracing::{Dispatch, Event, Subscriber, dispatcher::WeakDispatch};
use tracing_subscriber::{
    Layer,
    fmt::{
        self, FmtContext, FormatEvent, FormatFields,
        format::{JsonFields, Writer},
    },
    registry::LookupSpan,
};

/// The subscriber the trace ids are read from. Held weakly: `init` installs it globally, and a
/// formatter cannot look the global one up while an event is being dispatched (tracing hides it
/// then, to stop recursion).
static DISPATCH: OnceLock<WeakDispatch> = OnceLock::new();

/// Remembers the subscriber whose spans carry the OpenTelemetry contexts.
pub fn remember_dispatch(dispatch: &Dispatch) {
    let _ = DISPATCH.set(dispatch.downgrade());
}

/// The log layer: text or JSON lines on stdout, with trace ids.
pub fn layer<S>(json: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    if json {
        fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(WithTraceIds {
                inner: fmt::format().json(),
                json: true,
            })
            .boxed()
    } else {
        fmt::layer()
            .event_format(WithTraceIds {
                inner: fmt::format(),
                json: false,
            })
            .boxed()
    }
}

/// Wraps a formatter and adds the trace and span ids of the innermost traced span of an event.
struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

/// `(trace_id, span_id)` in lowercase hex, from the innermost span of the event that is traced.
fn trace_ids<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<(String, String)>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    let dispatch = DISPATCH.get()?.upgrade()?;
    let scope = ctx.event_scope()?;
    for span in scope {
        let Some(context) = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch) else {
            continue;
        };
        let otel_span = context.span();
        let span_context = otel_span.span_context();
        if span_context.is_valid() {
            return Some((
                span_context.trace_id().to_string(),
                span_context.span_id().to_string(),
            ));
        }
    }
    None
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some((trace_id, span_id)) = trace_ids(ctx) else {
            return self.inner.format_event(ctx, writer, event);
        };
        // The inner formatter ends the line; format into a buffer and add the ids before the end.
        // (Such lines lose terminal colours: `Writer` offers no coloured buffer.)
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n');
        match line.strip_suffix('}').filter(|_| self.json) {
            Some(object) => writeln!(
                writer,
                "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
            ),
            None => writeln!(writer, "{line} trace_id={trace_id} span_id={span_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::prelude::*;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_inside_a_traced_span_carry_its_ids() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(
                fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(WithTraceIds {
                        inner: fmt::format().json(),
                        json: true,
                    })
                    .with_writer(move || writer.clone()),
            );
        let dispatch = Dispatch::new(subscriber);
        remember_dispatch(&dispatch);
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("outside");
            let span = tracing::info_span!("work");
            span.in_scope(|| tracing::info!(answer = 42, "inside"));
        });
        let output = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = output
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect();
        assert_eq!(lines.len(), 2, "{output}");
        assert!(lines[0].get("trace_id").is_none());
        assert_eq!(lines[1]["fields"]["answer"], 42);
        let trace_id = lines[1]["trace_id"].as_str().unwrap();
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "00000000000000000000000000000000");
        assert_eq!(lines[1]["span_id"].as_str().unwrap().len(), 16);
    }
}
