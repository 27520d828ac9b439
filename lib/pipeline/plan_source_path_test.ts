import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import { UserError } from "../errors/mod.ts";
import { LocalArtifactStore } from "../artifacts/store.ts";
import { planPipelineText } from "./plan.ts";
import { JobRegistry } from "./registry.ts";

const STEPS = `  synth: { job: synth }
  scan: { job: scan, inputs: { audio: synth } }
`;

Deno.test("plan: a missing relative source path shows the absolute path tried and where relative paths are read from", async () => {
  const dir = await Deno.makeTempDir({ prefix: "samout-plan-source-" });
  try {
    const store = new LocalArtifactStore(dir);
    const text = `name: t\nseed: 1\nsteps:\n${STEPS}`;
    const name = "no_such_folder_for_plan_test";
    const e = await assertRejects(() =>
      planPipelineText(text, "p.yaml", [`scan.root=${name}`], new JobRegistry(), store)
    );
    assert(e instanceof UserError, `expected a UserError, got ${e}`);
    assertEquals(e.location.field, "steps.scan.params.root");
    assertEquals(e.found, `${name} (read as ${Deno.cwd()}/${name})`);
    assertStringIncludes(e.hint ?? "", "read from the project's folder");
    assertStringIncludes(e.hint ?? "", "give the absolute path");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
