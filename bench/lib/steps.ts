/**
 * Finding a maximum by stepping an open-model load: offer a rate, judge the step, and go up by
 * a factor while steps pass (down while the first ones fail); once a step fails after a pass,
 * one more step between the two refines the bound. The maximum is the best passing step.
 */

/** Rounds to two significant digits (1,234 → 1,200): rates that read well in a table. */
export function niceRate(rate: number): number {
  if (rate <= 0) return 0;
  const magnitude = 10 ** Math.max(0, Math.floor(Math.log10(rate)) - 1);
  return Math.max(1, Math.round(rate / magnitude) * magnitude);
}

export interface Judged<S> {
  rate: number;
  step: S;
  passed: boolean;
  /** Why the step failed (empty when it passed). */
  why: string;
}

export interface SearchOptions<S> {
  start: number;
  factor: number;
  /** Most steps in all (the refinement included). */
  maxSteps: number;
  /** Lowest rate worth trying when the first steps fail. */
  minRate: number;
  /** Highest rate to offer. */
  maxRate: number;
  /** Also try the geometric middle of the last pass and the first failure. */
  refine: boolean;
  run(rate: number): Promise<Judged<S>>;
  /** Called to stop early (time budget); no further step starts once it answers true. */
  outOfTime?(): boolean;
}

export interface SearchResult<S> {
  steps: Judged<S>[];
  best: Judged<S> | undefined;
}

export async function searchMax<S>(options: SearchOptions<S>): Promise<SearchResult<S>> {
  const steps: Judged<S>[] = [];
  const tried = new Set<number>();
  const attempt = async (rate: number) => {
    const judged = await options.run(rate);
    steps.push(judged);
    tried.add(rate);
    return judged;
  };
  const canGo = () => steps.length < options.maxSteps && !options.outOfTime?.();
  let rate = niceRate(options.start);
  let lastPass: number | undefined;
  let firstFail: number | undefined;
  while (canGo()) {
    const judged = await attempt(rate);
    if (judged.passed) {
      lastPass = rate;
      if (firstFail !== undefined) break; // came down to a passing rate
      const next = niceRate(Math.min(options.maxRate, rate * options.factor));
      if (next <= rate || tried.has(next)) break;
      rate = next;
    } else {
      firstFail = Math.min(firstFail ?? rate, rate);
      if (lastPass !== undefined) break;
      const next = niceRate(rate / options.factor);
      if (next < options.minRate || tried.has(next)) break;
      rate = next;
    }
  }
  if (
    options.refine &&
    lastPass !== undefined &&
    firstFail !== undefined &&
    firstFail > lastPass &&
    canGo()
  ) {
    const middle = niceRate(Math.sqrt(lastPass * firstFail));
    if (middle > lastPass && middle < firstFail && !tried.has(middle)) await attempt(middle);
  }
  const passed = steps.filter((s) => s.passed).sort((a, b) => b.rate - a.rate);
  return { steps: steps.sort((a, b) => a.rate - b.rate), best: passed[0] };
}
