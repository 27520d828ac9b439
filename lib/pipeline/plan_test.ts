import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { parsePipelineText } from "./file.ts";
import { type Plan, planPipelineText, resolveSteps } from "./plan.ts";
import { LocalArtifactStore } from "../artifacts/store.ts";
import { JobRegistry } from "./registry.ts";

/** The real jobs in jobs/. */
const registry = new JobRegistry();

/** `steps:` lines -> a plan with the real jobs (no keys, nothing run). */
async function plan(steps: string): Promise<Plan> {
  const text = `name: t\nseed: 1\nsteps:\n${steps}`;
  return await resolveSteps(await parsePipelineText(text, "p.yaml"), registry);
}

async function planError(steps: string): Promise<UserError> {
  const e = await assertRejects(() => plan(steps));
  assert(e instanceof UserError, `expected a UserError, got ${e}`);
  assertEquals(e.location.file, "p.yaml");
  return e;
}

const CHAIN = `  synth: { job: synth }
  scan: { job: scan, inputs: { audio: synth } }
  tokenize: { job: tokenize, inputs: { scan: scan } }
  bucket: { job: bucket, inputs: { tokens: tokenize } }
`;

Deno.test("plan: the chain synth -> scan -> tokenize -> bucket -> train is accepted", async () => {
  const p = await plan(CHAIN + "  train: { job: train, inputs: { data: bucket } }\n");
  assertEquals(p.order, ["synth", "scan", "tokenize", "bucket", "train"]);
  assertEquals(p.steps.get("train")!.inputs, { data: "bucket" });
});

Deno.test("plan: a slot the job does not have names the step, the slot and the job's slots", async () => {
  const e = await planError(CHAIN + "  train: { job: train, inputs: { dta: bucket } }\n");
  assertEquals(e.message, 'the job "train" has no input slot "dta"');
  assertEquals([e.location.step, e.location.field], ["train", "steps.train.inputs.dta"]);
  assertStringIncludes(e.expected!, "data (from a bucket step)");
  assertStringIncludes(e.found!, "dta: bucket");
});

Deno.test("plan: an extra slot next to the right one is still an error", async () => {
  const e = await planError(
    CHAIN + "  train: { job: train, inputs: { data: bucket, extra: tokenize } }\n",
  );
  assertEquals(e.location.field, "steps.train.inputs.extra");
});

Deno.test("plan: a job that takes no inputs says so", async () => {
  const e = await planError("  a: { job: synth }\n  b: { job: synth, inputs: { audio: a } }\n");
  assertEquals(e.location.field, "steps.b.inputs.audio");
  assertStringIncludes(e.expected!, 'no inputs: the job "synth" takes none');
});

Deno.test("plan: an input from a step of the wrong job names both jobs", async () => {
  const e = await planError(
    "  synth: { job: synth }\n  train: { job: train, inputs: { data: synth } }\n",
  );
  assertEquals(e.message, 'input "data" is wired to a step of the wrong kind');
  assertEquals([e.location.step, e.location.field], ["train", "steps.train.inputs.data"]);
  assertStringIncludes(e.expected!, '"bucket"');
  assertEquals(e.found, 'step "synth", which runs the job "synth"');
});

Deno.test("plan: scan with root drops its wired audio slot (and synth with it)", async () => {
  const root = await Deno.makeTempDir();
  try {
    const p = await plan(
      `  synth: { job: synth }\n  scan: { job: scan, inputs: { audio: synth }, params: { root: ${
        JSON.stringify(root)
      } } }\n`,
    );
    assertEquals(p.steps.get("scan")!.inputs, {});
    assertEquals(p.steps.get("synth")!.active, false, "synth fed only the dropped slot");
  } finally {
    await Deno.remove(root);
  }
});

Deno.test("plan: a dropped slot is still checked for its kind", async () => {
  const e = await planError(
    CHAIN +
      '  train: { job: train, inputs: { data: bucket } }\n  scan2: { job: scan, inputs: { audio: train }, params: { root: "/" } }\n',
  );
  assertEquals(e.location.field, "steps.scan2.inputs.audio");
});

Deno.test("plan: every job declares slots covering the inputs it needs", async () => {
  const names = await registry.known();
  assert(names.length >= 5, `jobs: ${names}`);
  let checked = 0;
  for (const name of names) {
    const { job } = await registry.load(name, {});
    assert(job.slots, `jobs/${name}.ts declares no slots`);
    const defaults = job.params.safeParse({});
    assert(defaults.success, `jobs/${name}.ts: default parameters`);
    checked++;
    for (const slot of job.inputs(defaults.data)) {
      assert(Object.hasOwn(job.slots, slot), `jobs/${name}.ts needs "${slot}" but lacks the slot`);
      for (const from of job.slots[slot]) {
        assert(names.includes(from), `${name}.${slot}: no job "${from}"`);
      }
    }
  }
  assertEquals(checked, names.length);
});

Deno.test("plan: the pipelines in pipelines/ wire every slot to the right kind", async () => {
  const dir = new URL("../../pipelines/", import.meta.url);
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".yaml")) continue;
    const text = await Deno.readTextFile(new URL(e.name, dir));
    await resolveSteps(await parsePipelineText(text, e.name), registry);
    n++;
  }
  assert(n >= 2, `${n} pipelines`);
});

Deno.test("plan: a missing source path names its field and the --set that set it (cached plan too)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "samout-plan-test-" });
  try {
    const store = new LocalArtifactStore(dir);
    const text = `name: t\nseed: 1\nsteps:\n${CHAIN}`;
    // Twice: the second plan comes from the plan cache the first one wrote.
    for (const attempt of ["first", "cached"]) {
      const e = await assertRejects(() =>
        planPipelineText(text, "p.yaml", ["scan.root=/nonexistent/sounds"], registry, store)
      );
      assert(e instanceof UserError, `${attempt}: expected a UserError, got ${e}`);
      assertEquals(
        e.message,
        "source path does not exist (set by --set scan.root=/nonexistent/sounds)",
        attempt,
      );
      assertEquals([e.location.step, e.location.field], ["scan", "steps.scan.params.root"]);
      assertEquals(e.found, "/nonexistent/sounds");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
