/**
 * End-to-end: bad input to `main.ts pipeline` exits non-zero with one clear
 * message on stderr (file, step, field, expected; no stack trace) and leaves
 * the store as it was.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import {
  byStep,
  type CliResult,
  E2E_PIPELINE,
  listTree,
  readJson,
  sandbox,
  storeListing,
} from "./fixtures/e2e/helpers.ts";

/** How the CLI names the e2e pipeline file (repo-relative). */
const E2E_FILE = "tests/fixtures/pipelines/e2e_tiny.yaml";

/** One bad invocation and the parts its message must hold. */
interface BadCase {
  name: string;
  /** Replaces text of the pipeline file (a copy in the sandbox is run) or adds `--set`s. */
  edit?: [string, string];
  set?: string[];
  /** The message's location line, e.g. `file X, step "s", field f: …`. */
  where: { step?: string; field?: string };
  message: string;
  expected: string;
}

const CASES: BadCase[] = [
  {
    name: "an unknown job",
    edit: ["job: bucket", "job: buckit"],
    where: { step: "bucket", field: "steps.bucket.job" },
    message: 'unknown job "buckit"',
    expected: "one of the jobs in jobs: bucket, evaluate, export, scan, synth, tokenize, train",
  },
  {
    name: "a parameter of the wrong type in the file",
    edit: ["batch_size: 8", "batch_size: eight"],
    where: { step: "bucket", field: "steps.bucket.params.batch_size" },
    message: "wrong type",
    expected: "a number",
  },
  {
    name: "--set with a value of the wrong type",
    set: ["tokenize.codebook_size=abc"],
    where: { step: "tokenize", field: "steps.tokenize.params.codebook_size" },
    message: "(set by --set tokenize.codebook_size=abc)",
    expected: "a number",
  },
  {
    name: "--set with a value out of range",
    set: ["tokenize.codebook_size=1"],
    where: { step: "tokenize", field: "steps.tokenize.params.codebook_size" },
    message: "(set by --set tokenize.codebook_size=1)",
    expected: ">= 2",
  },
  {
    name: "--set of an unknown parameter",
    set: ["bucket.batchsize=4"],
    where: { step: "bucket", field: "steps.bucket.params.batchsize" },
    message: 'unknown key "batchsize"',
    expected: "only the keys batch_size, max_length, overflow, shuffle_within_buckets",
  },
  {
    name: "--set of an unknown step",
    set: ["nostep.x=1"],
    where: { field: "steps.nostep" },
    message: 'the pipeline has no step "nostep"',
    expected: "one of the steps synth, scan, tokenize, bucket, train",
  },
  {
    name: "--set without a value",
    set: ["bucket.batch_size"],
    where: {},
    message: 'bad override "--set bucket.batch_size"',
    expected: "--set STEP.PARAM=VALUE",
  },
];

/** Checks the one-message shape: `error: file F[, step "S"][, field P]: MESSAGE`, then `expected:`. */
function checkMessage(r: CliResult, file: string, c: BadCase): void {
  const what = `${c.name}: exit ${r.code}, stderr:\n${r.stderr}`;
  assertEquals(r.code, 1, what);
  const location = [
    `file ${file}`,
    c.where.step && `step "${c.where.step}"`,
    c.where.field && `field ${c.where.field}`,
  ].filter(Boolean).join(", ");
  assertStringIncludes(r.stderr, `error: ${location}: `, what);
  assertStringIncludes(r.stderr, c.message, what);
  const expected = r.stderr.split("\n").find((l) => l.startsWith("  expected: "));
  assert(expected !== undefined, `${what}\n(no "expected:" line)`);
  assertStringIncludes(expected, c.expected, what);
  assert(!/^\s+at /m.test(r.stderr), `${what}\n(a stack trace reached the user)`);
  const json = JSON.parse(r.stdout);
  assertEquals(json.status, "invalid", `${c.name}: --json says the run is invalid`);
  assertStringIncludes(json.error, c.message);
}

/** The store's files except `cache/yaml/` (parsed-YAML cache keyed by the text's hash; see below). */
async function listingWithoutYamlCache(store: string): Promise<string[]> {
  return (await storeListing(store)).filter((l) => !l.startsWith("cache/yaml/"));
}

Deno.test("e2e: bad pipeline files and --set values exit 1 naming file, step, field and expected; the store is unchanged", async (t) => {
  await using box = await sandbox();
  const store = join(box.path, "store");
  const warm = await box.pipeline(E2E_PIPELINE, store, ["--until", "scan"]);
  assertEquals(warm.code, 0, warm.stderr);
  const text = await Deno.readTextFile(E2E_PIPELINE);

  for (const c of CASES) {
    await t.step(c.name, async () => {
      let file = E2E_FILE, path = E2E_PIPELINE;
      if (c.edit) {
        assert(text.includes(c.edit[0]), `the pipeline holds ${c.edit[0]}`);
        path = file = join(box.path, "bad.yaml");
        await Deno.writeTextFile(path, text.replace(c.edit[0], c.edit[1]));
      }
      // The YAML cache may gain an entry for a new text; every other file must stay as it was.
      const before = await listingWithoutYamlCache(store);
      const r = await box.cli([
        "pipeline",
        path,
        "--store",
        store,
        "--json",
        ...(c.set ?? []).flatMap((s) => ["--set", s]),
      ]);
      checkMessage(r, file, c);
      assertEquals(await listingWithoutYamlCache(store), before, `${c.name}: the store changed`);
    });
  }
});

Deno.test("e2e: a parameter error found while a job runs names the step's full field path", async () => {
  await using box = await sandbox();
  const store = join(box.path, "store");
  // Sequences longer than 8 positions: only the train job can tell, after its inputs exist.
  const r = await box.pipeline(E2E_PIPELINE, store, ["--set", "train.model.max_positions=8"]);
  assertEquals(r.code, 1, `exit 1 for a user error, stderr:\n${r.stderr}`);
  assertEquals(r.summary.status, "failed");
  assertEquals(byStep(r.summary, "status"), {
    synth: "ran",
    scan: "ran",
    tokenize: "ran",
    bucket: "ran",
    train: "failed",
    evaluate: "not-run",
    export: "not-run",
  });
  const key = byStep(r.summary, "key").train!;
  assert(!(await listTree(join(store, "objects", key))).length, "no train artifact is published");
  assertEquals(await listTree(join(store, "tmp")), [], "no staging left behind");
  const record = await readJson<{ status: string }>(r.summary.record!);
  assertEquals(record.status, "failed");
  assert(!/^\s+at /m.test(r.stderr), `no stack trace:\n${r.stderr}`);
  assertStringIncludes(
    r.stderr,
    `error: file ${E2E_FILE}, step "train", field steps.train.params.model.max_positions: `,
    "the field is the full path in the pipeline file, like every other parameter error",
  );
  assertStringIncludes(r.stderr, "expected: at least ");
});
