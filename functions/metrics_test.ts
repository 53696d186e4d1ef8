import assert from "node:assert/strict";
import { Counter, Histogram, Metrics } from "./metrics.ts";

Deno.test("Metrics.render() writes Prometheus text with HELP, TYPE, sorted escaped labels and histograms", () => {
  const m = new Metrics();
  m.requests.inc({ route: "/v1/text-to-image", method: "POST", status: "200" });
  m.requests.inc({ status: "200", method: "POST", route: "/v1/text-to-image" }, 2);
  m.images.inc({ task: 'a"b\\c\nd' });
  m.inferenceSeconds.observe(0.2, { task: "text-to-image" });
  m.inferenceSeconds.observe(7, { task: "text-to-image" });
  m.gauge("ldm_queue_depth", "Requests waiting.", () => 3);
  const text = m.render();
  assert.match(
    text,
    /^# HELP ldm_http_requests_total HTTP requests by route, method and status\.\n# TYPE ldm_http_requests_total counter\n/,
  );
  assert.match(text, /\nldm_http_requests_total\{method="POST",route="\/v1\/text-to-image",status="200"\} 3\n/);
  assert.match(text, /\nldm_images_total\{task="a\\"b\\\\c\\nd"\} 1\n/);
  assert.match(text, /\nldm_inference_seconds_bucket\{task="text-to-image",le="0\.25"\} 1\n/);
  assert.match(text, /\nldm_inference_seconds_bucket\{task="text-to-image",le="10"\} 2\n/);
  assert.match(text, /\nldm_inference_seconds_bucket\{task="text-to-image",le="\+Inf"\} 2\n/);
  assert.match(text, /\nldm_inference_seconds_sum\{task="text-to-image"\} 7\.2\n/);
  assert.match(text, /\nldm_inference_seconds_count\{task="text-to-image"\} 2\n/);
  assert.match(text, /\n# TYPE ldm_queue_depth gauge\nldm_queue_depth 3\n$/);
});

Deno.test("Counter and Histogram report their series", () => {
  const c = new Counter("c_total", "c");
  c.inc();
  c.inc({}, 4);
  assert.equal(c.get(), 5);
  assert.deepEqual(c.render(), ["c_total 5"]);
  const h = new Histogram("h", "h", [1]);
  h.observe(2);
  assert.equal(h.count(), 1);
  assert.deepEqual(h.render(), ['h_bucket{le="1"} 0', 'h_bucket{le="+Inf"} 1', "h_sum 2", "h_count 1"]);
});
