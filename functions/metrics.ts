/**
 * Prometheus metrics of the functions (text exposition format 0.0.4): requests by route and status, queue depth,
 * inference seconds, steps per second, images produced, batches and cancellations.
 *
 * @module
 */

type Labels = Readonly<Record<string, string>>;

function labelKey(labels: Labels): string {
  return Object.keys(labels).sort().map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(",");
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  render(): string[];
}

/** A monotonically increasing count per label set. */
export class Counter implements Family {
  /** Exposition type. */
  readonly type = "counter" as const;
  readonly #values = new Map<string, number>();
  /** Registers nothing; use {@linkcode Metrics} to create counters. */
  constructor(readonly name: string, readonly help: string) {}
  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  /** The current value of a series (0 when absent). */
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  /** Exposition lines. */
  render(): string[] {
    return [...this.#values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${formatNumber(v)}`);
  }
}

/** A value that goes up and down, set directly or read from a callback at scrape time. */
export class Gauge implements Family {
  /** Exposition type. */
  readonly type = "gauge" as const;
  readonly #values = new Map<string, number>();
  readonly #collect: (() => number) | undefined;
  /** Registers nothing; use {@linkcode Metrics} to create gauges. */
  constructor(readonly name: string, readonly help: string, collect?: () => number) {
    this.#collect = collect;
  }
  /** Sets the series with these labels. */
  set(value: number, labels: Labels = {}): void {
    this.#values.set(labelKey(labels), value);
  }
  /** The current value of a series (0 when absent). */
  get(labels: Labels = {}): number {
    if (this.#collect && Object.keys(labels).length === 0) return this.#collect();
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  /** Exposition lines. */
  render(): string[] {
    if (this.#collect) return [`${this.name} ${formatNumber(this.#collect())}`];
    return [...this.#values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${formatNumber(v)}`);
  }
}

/** Cumulative buckets, sum and count per label set. */
export class Histogram implements Family {
  /** Exposition type. */
  readonly type = "histogram" as const;
  readonly #series = new Map<string, { buckets: number[]; sum: number; count: number }>();
  /** Registers nothing; use {@linkcode Metrics} to create histograms. */
  constructor(readonly name: string, readonly help: string, readonly bounds: readonly number[]) {}
  /** Records one observation. */
  observe(value: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.#series.get(k);
    if (!s) {
      s = { buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.#series.set(k, s);
    }
    this.bounds.forEach((b, i) => {
      if (value <= b) s.buckets[i]!++;
    });
    s.sum += value;
    s.count++;
  }
  /** Observations recorded for a series. */
  count(labels: Labels = {}): number {
    return this.#series.get(labelKey(labels))?.count ?? 0;
  }
  /** Exposition lines. */
  render(): string[] {
    const lines: string[] = [];
    for (const [k, s] of this.#series) {
      const sep = k ? "," : "";
      this.bounds.forEach((b, i) =>
        lines.push(`${this.name}_bucket{${k}${sep}le="${formatNumber(b)}"} ${s.buckets[i]}`)
      );
      lines.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ""} ${formatNumber(s.sum)}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
    return lines;
  }
}

const SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** The metric families the functions export. Create one per app; `render()` is the `/metrics` body. */
export class Metrics {
  readonly #families: Family[] = [];
  /** HTTP requests by `route` (the matched pattern), `method` and `status`. */
  readonly requests: Counter = this.#add(
    new Counter("ldm_http_requests_total", "HTTP requests by route, method and status."),
  );
  /** Request durations by route. */
  readonly requestSeconds: Histogram = this.#add(
    new Histogram("ldm_http_request_duration_seconds", "HTTP request durations by route.", SECONDS_BUCKETS),
  );
  /** Pipeline call durations by task. */
  readonly inferenceSeconds: Histogram = this.#add(
    new Histogram("ldm_inference_seconds", "Pipeline call durations by task (successful calls).", SECONDS_BUCKETS),
  );
  /** Denoising steps per second of the last successful call, by task. */
  readonly stepsPerSecond: Gauge = this.#add(
    new Gauge("ldm_steps_per_second", "Denoising steps per second of the last successful pipeline call, by task."),
  );
  /** Denoising steps run, by task. */
  readonly steps: Counter = this.#add(new Counter("ldm_denoising_steps_total", "Denoising steps run, by task."));
  /** Images produced, by task. */
  readonly images: Counter = this.#add(new Counter("ldm_images_total", "Images produced, by task."));
  /** Pipeline calls by task and outcome (ok, error, cancelled). */
  readonly batches: Counter = this.#add(
    new Counter("ldm_pipeline_calls_total", "Pipeline calls by task and outcome (ok, error, cancelled)."),
  );
  /** Requests served by pipeline calls that batched several requests. */
  readonly batchedRequests: Counter = this.#add(
    new Counter("ldm_batched_requests_total", "Requests that shared a pipeline call with others, by task."),
  );
  /** Requests cancelled, by reason (client_disconnect, timeout, shutdown). */
  readonly cancelled: Counter = this.#add(
    new Counter(
      "ldm_cancelled_requests_total",
      "Requests cancelled, by reason (client_disconnect, timeout, shutdown).",
    ),
  );

  /** Generation requests answered without a run of their own (`Idempotency-Key` retries), by task and source
   * (`stored`: a finished response replayed; `in_flight`: joined the run still going). */
  readonly replays: Counter = this.#add(
    new Counter(
      "ldm_idempotent_replays_total",
      "Requests answered by an earlier request's run (Idempotency-Key), by task and source (stored, in_flight).",
    ),
  );

  #add<F extends Family>(f: F): F {
    this.#families.push(f);
    return f;
  }

  /** Adds a gauge read at scrape time (queue depth, in-flight generations, readiness). */
  gauge(name: string, help: string, collect: () => number): Gauge {
    return this.#add(new Gauge(name, help, collect));
  }

  /** The exposition text (`text/plain; version=0.0.4`). */
  render(): string {
    const out: string[] = [];
    for (const f of this.#families) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render());
    }
    return out.join("\n") + "\n";
  }
}
