import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { UserError } from "../lib/errors/mod.ts";
import { BASIC_YAML, runQuiet, tempDir, writePipeline } from "./fixtures/pipeline_helpers.ts";

/** Runs a dry run of `yaml` and returns the UserError it must raise. */
async function validationError(yaml: string, overrides: string[] = []): Promise<UserError> {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, yaml);
  const err = await assertRejects(() =>
    runQuiet({ file, store: `${dir.path}/store`, overrides, dryRun: true })
  );
  assert(err instanceof UserError, `expected a UserError, got ${err}`);
  assertStringIncludes(err.format(), "p.yaml", "the error names the pipeline file");
  return err;
}

Deno.test("a YAML syntax error gives its line and column", async () => {
  const err = await validationError("name: x\nseed: 1\nsteps:\n  a: { job: write_text\n  b: 1\n");
  assertStringIncludes(err.message, "YAML syntax error at line");
  assertStringIncludes(err.format(), "column");
});

Deno.test("an unknown top-level key is rejected, naming the known keys", async () => {
  const err = await validationError(BASIC_YAML + "colour: blue\n");
  assertEquals(err.location.field, "colour");
  assertStringIncludes(err.message, 'unknown key "colour"');
  assertStringIncludes(err.expected!, "name, seed, steps");
});

Deno.test("an unknown step key is rejected with the step and field path", async () => {
  const err = await validationError(
    BASIC_YAML.replace("job: concat", "job: concat\n    parms: {}"),
  );
  assertEquals(err.location.step, "both");
  assertEquals(err.location.field, "steps.both.parms");
  assertStringIncludes(err.expected!, "job, inputs, params");
});

Deno.test("a wrong parameter type names step, field, expected and found", async () => {
  const err = await validationError(BASIC_YAML.replace('text: "hello"', "text: 12"));
  assertEquals(err.location.step, "hello");
  assertEquals(err.location.field, "steps.hello.params.text");
  assertEquals(err.expected, "a string");
  assertEquals(err.found, "the integer 12");
});

Deno.test("an out-of-range parameter says the bound", async () => {
  const err = await validationError(
    BASIC_YAML.replace('text: "hello"', 'text: "hello", repeat: 0'),
  );
  assertEquals(err.location.field, "steps.hello.params.repeat");
  assertEquals(err.expected, "a number >= 1");
  assertEquals(err.found, "the integer 0");
});

Deno.test("an unknown parameter lists the job's parameters", async () => {
  const err = await validationError(BASIC_YAML.replace('text: "hello"', 'text: "hello", size: 3'));
  assertEquals(err.location.field, "steps.hello.params.size");
  assertStringIncludes(err.expected!, "text, repeat");
});

Deno.test("an unknown job lists the known jobs", async () => {
  const err = await validationError(BASIC_YAML.replace("job: concat", "job: concatenate"));
  assertEquals(err.location.step, "both");
  assertEquals(err.location.field, "steps.both.job");
  assertStringIncludes(err.message, 'unknown job "concatenate"');
  assertStringIncludes(err.expected!, "concat, fail, read_source, slow, write_text");
});

Deno.test("a needed input slot that is not wired is an error", async () => {
  const err = await validationError(
    BASIC_YAML.replace("inputs: { a: hello, b: world }", "inputs: { a: hello }"),
  );
  assertEquals(err.location.field, "steps.both.inputs.b");
  assertStringIncludes(err.message, 'missing input "b"');
  assertStringIncludes(err.found!, "a: hello");
});

Deno.test("an input wired to an unknown step is an error", async () => {
  const err = await validationError(BASIC_YAML.replace("b: world", "b: wrld"));
  assertEquals(err.location.field, "steps.both.inputs.b");
  assertStringIncludes(err.expected!, "hello, world");
  assertEquals(err.found, '"wrld"');
});

Deno.test("a dependency cycle is named", async () => {
  const err = await validationError(`name: c
seed: 1
steps:
  a: { job: concat, inputs: { a: b, b: b } }
  b: { job: read_source, inputs: { text: a } }
`);
  assertStringIncludes(err.message, "dependency cycle: a -> b -> a");
});

Deno.test("a bad seed type is reported at field seed", async () => {
  const err = await validationError(BASIC_YAML.replace("seed: 1", "seed: one"));
  assertEquals(err.location.field, "seed");
  assertEquals(err.expected, "a number");
});

Deno.test("a bad override value names the override", async () => {
  const err = await validationError(BASIC_YAML, ["hello.repeat=lots"]);
  assertEquals(err.location.field, "steps.hello.params.repeat");
  assertStringIncludes(err.message, "set by --set hello.repeat=lots");
  assertEquals(err.found, 'the string "lots"');
});

Deno.test("an override of an unknown step lists the steps", async () => {
  const err = await validationError(BASIC_YAML, ["helo.text=x"]);
  assertStringIncludes(err.message, 'no step "helo"');
  assertStringIncludes(err.expected!, "hello, world, both, upper");
});

Deno.test("an override of an unknown parameter is rejected", async () => {
  const err = await validationError(BASIC_YAML, ["both.sep=x"]);
  assertEquals(err.location.field, "steps.both.params.sep");
  assertStringIncludes(err.message, "set by --set both.sep=x");
});

Deno.test("an override without '=' is rejected", async () => {
  const err = await validationError(BASIC_YAML, ["hello.text"]);
  assertStringIncludes(err.message, "bad override");
});

Deno.test("good overrides change params and seed (flow values parsed as YAML)", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(dir.path, BASIC_YAML);
  const store = `${dir.path}/store`;
  const base = await runQuiet({ file, store, dryRun: true });
  const over = await runQuiet({
    file,
    store,
    dryRun: true,
    overrides: ["hello.repeat=3", "world.text=[1]"],
  })
    .catch((e) => e);
  assert(over instanceof UserError, "a list is not a string");
  const good = await runQuiet({ file, store, dryRun: true, overrides: ["hello.repeat=3"] });
  const k = (s: typeof base, n: string) => s.steps.find((x) => x.step === n)!.key;
  assert(k(base, "hello") !== k(good, "hello"), "hello's key changes with its params");
  assertEquals(k(base, "world"), k(good, "world"));
  const seeded = await runQuiet({ file, store, dryRun: true, overrides: ["seed=7"] });
  assert(k(base, "hello") !== k(seeded, "hello"), "the seed is part of every step key");
});

Deno.test("a YAML alias bomb is a clear error, not a stack trace", async () => {
  const levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
  for (let i = 1; i < 9; i++) {
    const [prev, cur] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
    levels.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(", ")}]`);
  }
  const err = await validationError(levels.join("\n") + "\n");
  assertStringIncludes(err.message, "the YAML expands its aliases too far");
  assertStringIncludes(err.found!, "billion-laughs");
});

Deno.test("a few YAML aliases are fine", async () => {
  await using dir = await tempDir();
  const file = await writePipeline(
    dir.path,
    BASIC_YAML.replace('params: { text: "hello" }', 'params: &p { text: "hello" }')
      .replace('params: { text: "world" }', "params: *p"),
  );
  const s = await runQuiet({ file, store: `${dir.path}/store`, dryRun: true });
  assertEquals(s.status, "dry-run");
});
