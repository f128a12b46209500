// A web page's tracing, as an application would set it up: the OpenTelemetry JS web SDK
// exporting over OTLP/HTTP JSON to the vivace named in the page's query string
// (`?otlp=<url>&service=<name>&tenant=<org id>`). Bundled by esbuild for tests/ui/otlp_browser.mjs.
// The export's result code (0 success, 1 failure) and error are left on window.__export.
import { WebTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-web';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';

const params = new URLSearchParams(location.search);
const exporter = new OTLPTraceExporter({
  url: `${params.get('otlp')}/v1/traces`,
  headers: { 'X-Scope-OrgID': params.get('tenant') },
});

/** The exporter, recording what each export returned. */
const recording = {
  export(spans, done) {
    exporter.export(spans, (result) => {
      window.__export = { code: result.code, error: result.error ? String(result.error) : '' };
      done(result);
    });
  },
  shutdown: () => exporter.shutdown(),
  forceFlush: () => exporter.forceFlush(),
};

const provider = new WebTracerProvider({
  resource: resourceFromAttributes({ 'service.name': params.get('service') }),
  spanProcessors: [new SimpleSpanProcessor(recording)],
});
const tracer = provider.getTracer('vivace-cors-test');
const parent = tracer.startSpan('checkout click');
parent.setAttribute('page.origin', location.origin);
parent.end();
