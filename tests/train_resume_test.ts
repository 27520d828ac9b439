import { join } from "node:path";
import { assert, assertEquals } from "./assert.ts";
import { writeTinyBucket } from "./fixtures/train/tiny_data.ts";

const DRIVER = new URL("./fixtures/train/driver.ts", import.meta.url).pathname;
const PARAMS = JSON.stringify({
  model: { hidden: 16, heads: 2, layers: 2, max_positions: 64 },
  epochs: 4,
  patience: 10,
  log_every_steps: 1,
  checkpoint_every_steps: 2,
  schedule: { kind: "cosine", warmup_steps: 3 },
});

function start(dataDir: string, workDir: string, outDir: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", DRIVER, dataDir, workDir, outDir, PARAMS],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function finish(child: Deno.ChildProcess): Promise<string> {
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.success, `the training process failed:\n${text}`);
  return text;
}

async function checkpointStep(workDir: string): Promise<number> {
  try {
    const state = JSON.parse(await Deno.readTextFile(join(workDir, "checkpoint", "state.json")));
    return state.step;
  } catch {
    return -1;
  }
}

Deno.test("train: a run killed with SIGKILL at several points resumes to bit-identical weights", async () => {
  const root = await Deno.makeTempDir({ prefix: "samout-resume-" });
  try {
    const data = join(root, "data");
    await writeTinyBucket(data);

    // Uninterrupted reference run.
    await finish(start(data, join(root, "work-a"), join(root, "out-a")));

    // Interrupted run: kill it as soon as a checkpoint past each target step exists.
    const workB = join(root, "work-b");
    let kills = 0;
    for (const target of [1, 6, 12]) {
      const child = start(data, workB, join(root, "out-b"));
      let killed = false;
      for (let i = 0; i < 600; i++) {
        if (await checkpointStep(workB) >= target) {
          child.kill("SIGKILL");
          killed = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      const status = await child.status;
      if (killed && !status.success) kills++;
    }
    assert(kills >= 2, `expected at least two runs to be killed mid-training, got ${kills}`);
    await finish(start(data, workB, join(root, "out-b")));

    const curve = async (dir: string) =>
      (await Deno.readTextFile(join(root, dir, "curves.jsonl"))).trim().split("\n")
        .map((l) => JSON.parse(l)).map((r) => `${r.kind} ${r.step} ${r.loss ?? r.val_loss}`);
    const [ca, cb] = [await curve("out-a"), await curve("out-b")];
    const firstDiff = ca.findIndex((line, i) => line !== cb[i]);
    assertEquals(
      firstDiff,
      -1,
      `curves differ from line ${firstDiff}: ${ca[firstDiff]} vs ${cb[firstDiff]}`,
    );
    for (const file of ["last.safetensors", "best.safetensors"]) {
      const a = await Deno.readFile(join(root, "out-a", file));
      const b = await Deno.readFile(join(root, "out-b", file));
      assertEquals(b.length, a.length, `${file}: sizes differ`);
      assert(a.every((x, i) => x === b[i]), `${file}: the resumed run's weights differ`);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
