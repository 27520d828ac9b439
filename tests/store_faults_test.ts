/**
 * Faults of the store and of the data it is fed, as tables: each case sets a
 * fault up, runs `main.ts pipeline` in a subprocess, and states the exit
 * code, words the output must contain, that no stack trace is printed, and
 * that the store verifies afterwards (no damaged artifact, no staging or
 * temporary file left, no record left "running"). Adding a case is one entry.
 *
 * Tables: corrupt artifacts and published-artifact immutability (fixture jobs,
 * fast); a user's audio folder with links, loops, unreadable and oddly named
 * files (the real scan job, `--until scan`); store faults (a file as the store,
 * a read-only store, a full disk: tmpfs mounts, so root only, skipped
 * otherwise; permissions: run as `nobody` through `setpriv`); training
 * checkpoints with damaged files (the train loop in its own process).
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { LocalArtifactStore } from "../lib/artifacts/store.ts";
import { codeFiles, codeHash } from "../lib/pipeline/code_hash.ts";
import { finishRunRecord, type RunRecord, writeRunRecord } from "../lib/pipeline/records.ts";
import { REPO_ROOT } from "../lib/pipeline/paths.ts";
import { SourceHasher } from "../lib/pipeline/sources.ts";
import { BASIC_YAML, FIXTURE_JOBS } from "./fixtures/pipeline_helpers.ts";
import { E2E_PIPELINE, writeLabelledWavs } from "./fixtures/e2e/helpers.ts";
import { writeTinyBucket } from "./fixtures/train/tiny_data.ts";

// ---- harness -------------------------------------------------------------------

interface CliResult {
  code: number;
  /** stdout and stderr together. */
  out: string;
}

/** How a subprocess runs: as whom, with what environment. */
interface RunAs {
  env?: Record<string, string>;
  /** Run as the unprivileged user `nobody` (see {@link nobody}). */
  nobody?: boolean;
}

const ROOT = Deno.uid() === 0;

/** `deno run -A main.ts ARGS…` at the repository root. */
async function cli(args: string[], as: RunAs = {}): Promise<CliResult> {
  let cmd = Deno.execPath();
  let argv = ["run", "-A", join(REPO_ROOT, "main.ts"), ...args];
  const env: Record<string, string> = { NO_COLOR: "1", ...as.env };
  if (as.nobody) {
    const n = await nobody();
    argv = ["--reuid=65534", "--regid=65534", "--clear-groups", n.deno, ...argv];
    cmd = "setpriv";
    Object.assign(env, { DENO_DIR: n.denoDir, HOME: n.home, XDG_RUNTIME_DIR: n.home });
  }
  const o = await new Deno.Command(cmd, {
    args: argv,
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

let nobodySetup: Promise<{ deno: string; denoDir: string; home: string }> | undefined;

/**
 * What running as `nobody` needs: the deno binary where nobody can reach it
 * (a hard link, else a copy, of this one) and a DENO_DIR and HOME of its own.
 */
function nobody(): Promise<{ deno: string; denoDir: string; home: string }> {
  nobodySetup ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "samout-nobody-" });
    await Deno.chmod(dir, 0o777);
    const deno = join(dir, "deno");
    await Deno.link(Deno.execPath(), deno).catch(() => Deno.copyFile(Deno.execPath(), deno));
    await Deno.chmod(deno, 0o755);
    addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return { deno, denoDir: join(dir, "deno-dir"), home: dir };
  })();
  return nobodySetup;
}

/** Whether `setpriv` can drop to `nobody` here (root, util-linux present). */
const CAN_DROP_PRIVILEGES = ROOT && (() => {
  try {
    return new Deno.Command("setpriv", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

/** Mounts a tmpfs of `size` at `dir` (root only); false when that is not possible here. */
function mountTmpfs(dir: string, size: string): boolean {
  if (!ROOT) return false;
  Deno.mkdirSync(dir, { recursive: true });
  return sh(`mount -t tmpfs -o size=${size} tmpfs '${dir}'`);
}

function sh(command: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", command], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

const CAN_MOUNT = ROOT && (() => {
  const dir = Deno.makeTempDirSync({ prefix: "samout-mount-probe-" });
  const ok = mountTmpfs(dir, "64k");
  if (ok) sh(`umount '${dir}'`);
  Deno.removeSync(dir, { recursive: true });
  return ok;
})();

/** A stack frame line, as V8 prints them. */
const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

/** The store is sound: every artifact verifies, nothing is left in tmp/, no record says "running". */
async function assertStoreSound(store: string, what: string): Promise<void> {
  const report = await new LocalArtifactStore(store).verify();
  assertEquals(report.problems, [], `${what}: the store verifies`);
  const left = (dir: string) => {
    try {
      return [...Deno.readDirSync(join(store, dir))].map((e) => e.name);
    } catch {
      return [];
    }
  };
  assertEquals(left("tmp"), [], `${what}: no staging left in tmp/`);
  for (const name of left("runs")) {
    assert(name.endsWith(".json"), `${what}: a temporary record file is left: runs/${name}`);
    const rec: RunRecord = JSON.parse(Deno.readTextFileSync(join(store, "runs", name)));
    assert(rec.status !== "running", `${what}: the record ${name} still says "running"`);
  }
}

/** One fault: how to set it up, what to run, and what must come out. */
interface FaultCase {
  name: string;
  /** Why the case cannot run here (skipped with this note), if it cannot. */
  skip?: () => string | undefined;
  /** Prepares the sandbox; returns the CLI arguments of the run under test. */
  setup(box: Box): Promise<string[]>;
  as?: RunAs;
  code: number;
  /** Words (or patterns) the output must contain. */
  says: (string | RegExp)[];
  /** The store need not verify afterwards (the fault is still in place). */
  storeUnsound?: boolean;
  /** Further checks, and the run after the cause is fixed. */
  after?(box: Box, r: CliResult): Promise<void>;
}

/** A temporary folder for one case, with a store and a pipeline file in it. */
interface Box {
  dir: string;
  store: string;
  /** `pipeline FILE --jobs-dir FIXTURE_JOBS --store STORE`, for the basic fixture pipeline. */
  basic: string[];
  /** Published artifact folder of a step of the basic pipeline. */
  artifact(step: string): string;
  /** What `setup` noted for `after` (a listing taken before the run). */
  memo: Record<string, string>;
}

async function makeBox(): Promise<Box & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "samout-store-faults-" });
  await Deno.chmod(dir, 0o755); // reachable by `nobody`
  const store = join(dir, "store");
  const file = join(dir, "basic.yaml");
  await Deno.writeTextFile(file, BASIC_YAML);
  return {
    dir,
    store,
    basic: ["pipeline", file, "--jobs-dir", FIXTURE_JOBS, "--store", store],
    memo: {},
    artifact(step: string) {
      for (const e of Deno.readDirSync(join(store, "objects"))) {
        const m = JSON.parse(
          Deno.readTextFileSync(join(store, "objects", e.name, "manifest.json")),
        );
        if (m.step === step) return join(store, "objects", e.name);
      }
      throw new Error(`no artifact of step ${step}`);
    },
    async [Symbol.asyncDispose]() {
      sh(
        `grep -q ' ${dir}/' /proc/mounts && for m in $(grep -o ' ${dir}/[^ ]*' /proc/mounts); do umount $m; done`,
      );
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function runCase(t: Deno.TestContext, c: FaultCase): Promise<void> {
  const why = c.skip?.();
  await t.step({
    name: why ? `${c.name} (skipped: ${why})` : c.name,
    ignore: why !== undefined,
    fn: async () => {
      await using box = await makeBox();
      const args = await c.setup(box);
      const r = await cli(args, c.as);
      const context = `\n--- output of ${args.join(" ")}:\n${r.out}`;
      assertEquals(r.code, c.code, `exit code${context}`);
      for (const w of c.says) {
        if (typeof w === "string") assertStringIncludes(r.out, w, `says "${w}"${context}`);
        else assertMatch(r.out, w, `says ${w}${context}`);
      }
      assert(!STACK_LINE.test(r.out), `no stack trace${context}`);
      if (!c.storeUnsound) await assertStoreSound(box.store, c.name);
      await c.after?.(box, r);
    },
  });
}

async function run(args: string[], as?: RunAs): Promise<CliResult> {
  const r = await cli(args, as);
  assertEquals(r.code, 0, `${args.join(" ")} failed:\n${r.out}`);
  return r;
}

/** Step -> status from the summary table a run prints. */
function statusesOf(out: string): Record<string, string> {
  const table = out.slice(out.lastIndexOf("step "));
  const rows = table.split("\n").slice(1).filter((l) =>
    /^\S+\s+\S+\s+(ran|cached|failed|not-run|pruned)\b/.test(l)
  );
  return Object.fromEntries(rows.map((l) => l.split(/\s+/)).map((p) => [p[0], p[2]]));
}

function runFiles(store: string): string[] {
  try {
    return [...Deno.readDirSync(join(store, "runs"))].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** `name inode mtime` of each file in `dir`: equal listings mean nothing was rewritten. */
function filesWithTimes(dir: string): string {
  return [...Deno.readDirSync(dir)].map((e) => {
    const i = Deno.statSync(join(dir, e.name));
    return `${e.name} ${i.ino} ${i.mtime?.getTime()}`;
  }).sort().join("\n");
}

function quarantined(store: string): string[] {
  try {
    return [...Deno.readDirSync(join(store, "quarantine"))].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

// ---- 1. corrupt artifacts, immutability, records ----------------------------

const ARTIFACT_CASES: FaultCase[] = [
  {
    name: "a truncated artifact file is not a cache hit: it is set aside and rebuilt",
    async setup(box) {
      await run(box.basic);
      await Deno.writeTextFile(join(box.artifact("both"), "out.txt"), "hel");
      return box.basic;
    },
    code: 0,
    says: ["does not match its manifest", "out.txt: size 3 bytes, manifest says 11", "quarantine/"],
    async after(box, r) {
      assertEquals(statusesOf(r.out).both, "ran");
      assertEquals(await Deno.readTextFile(join(box.artifact("both"), "out.txt")), "hello+world");
      const aside = quarantined(box.store);
      assertEquals(aside.length, 1, "one artifact set aside");
      assertEquals(
        await Deno.readTextFile(join(box.store, "quarantine", aside[0], "out.txt")),
        "hel",
      );
    },
  },
  {
    name: "a damaged input under --force of a later step is rebuilt before the step uses it",
    async setup(box) {
      await run(box.basic);
      await Deno.remove(join(box.artifact("both"), "out.txt"));
      return [...box.basic, "--force", "upper"];
    },
    code: 0,
    says: ["out.txt: file missing", "reproduced bit-identically"],
    async after(box, r) {
      assertEquals(statusesOf(r.out).both, "ran");
      assertEquals(await Deno.readTextFile(join(box.artifact("upper"), "out.txt")), "HELLO+WORLD");
    },
  },
  {
    name: "a flipped byte (same size) is caught by --verify, set aside and rebuilt",
    async setup(box) {
      await run(box.basic);
      await Deno.writeTextFile(join(box.artifact("both"), "out.txt"), "hello+worle");
      return [...box.basic, "--verify"];
    },
    code: 0,
    says: ["does not match the manifest", "quarantine/"],
    async after(box, r) {
      assertEquals(statusesOf(r.out).both, "ran");
      assertEquals(await Deno.readTextFile(join(box.artifact("upper"), "out.txt")), "HELLO+WORLD");
    },
  },
  {
    name: "--force with the same output says so and leaves the published bytes untouched",
    async setup(box) {
      await run(box.basic);
      const dir = box.artifact("both");
      box.memo.files = filesWithTimes(dir);
      return [...box.basic, "--force", "both"];
    },
    code: 0,
    says: ["reproduced bit-identically"],
    after(box) {
      assertEquals(filesWithTimes(box.artifact("both")), box.memo.files, "no file rewritten");
      return Promise.resolve();
    },
  },
  {
    name: "--force over a flipped byte (same size) sets the damaged copy aside and publishes anew",
    async setup(box) {
      await run(box.basic);
      await Deno.writeTextFile(join(box.artifact("both"), "out.txt"), "hello+worle");
      return [...box.basic, "--force", "both"];
    },
    code: 0,
    says: ["was moved to", "quarantine/", "before publishing the new one"],
    async after(box, r) {
      assert(!r.out.includes("reproduced bit-identically"), `not a reproduction:\n${r.out}`);
      assertEquals(await Deno.readTextFile(join(box.artifact("both"), "out.txt")), "hello+world");
      const aside = quarantined(box.store);
      assertEquals(aside.length, 1, "the damaged copy is set aside");
      assertEquals(
        await Deno.readTextFile(join(box.store, "quarantine", aside[0], "out.txt")),
        "hello+worle",
      );
    },
  },
  {
    name:
      "--force with different output fails, keeps the published artifact, sets the new one aside",
    async setup(box) {
      const file = join(box.dir, "env.yaml");
      await Deno.writeTextFile(file, "name: envp\nseed: 1\nsteps:\n  text: { job: env_text }\n");
      const jobs = new URL("./fixtures/store_faults/jobs", import.meta.url).pathname;
      const args = ["pipeline", file, "--jobs-dir", jobs, "--store", box.store];
      await run(args, { env: { STORE_FAULTS_TEXT: "first" } });
      return [...args, "--force", "text"];
    },
    as: { env: { STORE_FAULTS_TEXT: "second" } },
    code: 1,
    says: [
      "differs from the artifact already published",
      "kept unchanged",
      "out.txt",
      "quarantine/",
    ],
    async after(box) {
      assertEquals(await Deno.readTextFile(join(box.artifact("text"), "out.txt")), "first");
      const aside = quarantined(box.store);
      assertEquals(aside.length, 1);
      assertMatch(aside[0], /\.rerun$/);
      assertEquals(
        await Deno.readTextFile(join(box.store, "quarantine", aside[0], "out.txt")),
        "second",
      );
    },
  },
  {
    name: "a run with every step cached writes no record and names the one that built them",
    async setup(box) {
      await run(box.basic);
      box.memo.runs = runFiles(box.store).join("\n");
      return box.basic;
    },
    code: 0,
    says: ["every step cached, no record written", "these artifacts were built by"],
    after(box) {
      assertEquals(runFiles(box.store).join("\n"), box.memo.runs, "no new record");
      return Promise.resolve();
    },
  },
  {
    name: "--rerun says the code differs from the record's, which file, and which steps it affects",
    async setup(box) {
      const jobs = join(box.dir, "jobs");
      await Deno.mkdir(jobs);
      for (const j of ["write_text", "concat", "read_source"]) {
        await Deno.copyFile(join(FIXTURE_JOBS, `${j}.ts`), join(jobs, `${j}.ts`));
      }
      const file = join(box.dir, "basic.yaml");
      await run(["pipeline", file, "--jobs-dir", jobs, "--store", box.store]);
      const record = join(box.store, "runs", runFiles(box.store)[0]);
      const src = await Deno.readTextFile(join(jobs, "concat.ts"));
      await Deno.writeTextFile(join(jobs, "concat.ts"), `${src}// edited after the run\n`);
      return ["pipeline", "--rerun", record, "--store", box.store];
    },
    code: 0,
    says: [
      "the code differs from the code recorded in",
      "both: code changed (jobs/concat.ts changed)",
      "will run today's code instead of reusing the recorded artifacts: both, upper",
    ],
  },
];

Deno.test("store faults: corrupt artifacts, --force, records", async (t) => {
  for (const c of ARTIFACT_CASES) await runCase(t, c);
});

Deno.test("store faults: the code hash covers worker entry points and deno.lock", async () => {
  const root = await Deno.makeTempDir({ prefix: "samout-codehash-" });
  try {
    await Deno.writeTextFile(
      join(root, "job.ts"),
      'const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });\n',
    );
    await Deno.writeTextFile(join(root, "worker.ts"), "self.onmessage = () => {};\n");
    const files = await codeFiles(join(root, "job.ts"), root);
    assertEquals(Object.keys(files).filter((f) => !f.startsWith("deno.")), ["job.ts", "worker.ts"]);
    assert("deno.lock" in files, `deno.lock is part of the code hash: ${Object.keys(files)}`);
    const tokenize = await codeFiles(join(REPO_ROOT, "jobs", "tokenize.ts"), REPO_ROOT);
    assert(
      "lib/audio/feature_worker.ts" in tokenize,
      "tokenize's code hash covers its feature worker",
    );
    const before = await codeHash(join(root, "job.ts"), root);
    // codeHash caches per process: a fresh copy of the tree with the worker edited.
    const edited = join(root, "edited");
    await Deno.mkdir(edited);
    await Deno.copyFile(join(root, "job.ts"), join(edited, "job.ts"));
    await Deno.writeTextFile(join(edited, "worker.ts"), "self.onmessage = () => { close(); };\n");
    assert(
      before !== await codeHash(join(edited, "job.ts"), edited),
      "editing the worker changes the hash",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

// ---- 2. the user's audio folder ---------------------------------------------------

/** Category -> pitch; three clips each. */
const CATEGORIES = { bell: 880, drum: 110, hum: 220 };

/** Scans `<box>/audio` after `fault` changed it; the scan artifact's rejects and files come back. */
function audioCase(
  name: string,
  fault: (audio: string, box: Box) => Promise<void>,
  expect: {
    says?: (string | RegExp)[];
    rejected?: { path: string | RegExp; detail?: string | RegExp };
    listed?: string;
    as?: RunAs;
    skip?: () => string | undefined;
  },
): FaultCase {
  return {
    name,
    skip: expect.skip,
    as: expect.as,
    async setup(box) {
      const audio = join(box.dir, "audio");
      await writeLabelledWavs(audio, CATEGORIES, 3, 5);
      await fault(audio, box);
      if (expect.as?.nobody) {
        await Deno.mkdir(box.store);
        await Deno.chown(box.store, 65534, 65534);
      }
      return [
        "pipeline",
        E2E_PIPELINE,
        "--store",
        box.store,
        "--until",
        "scan",
        "--set",
        `scan.root=${audio}`,
      ];
    },
    code: 0,
    says: expect.says ?? [],
    async after(box) {
      const scan = box.artifact("scan");
      const rejects: { path: string; reason: string; detail: string }[] = JSON.parse(
        await Deno.readTextFile(join(scan, "rejects.json")),
      );
      const files: { path: string }[] =
        JSON.parse(await Deno.readTextFile(join(scan, "files.json")))
          .files;
      if (expect.rejected) {
        const want = expect.rejected;
        const hit = rejects.find((r) =>
          typeof want.path === "string" ? r.path === want.path : want.path.test(r.path)
        );
        assert(hit, `rejects.json lists ${want.path}: ${JSON.stringify(rejects)}`);
        assertEquals(hit.reason, "unreadable");
        if (want.detail) assertMatch(hit.detail, new RegExp(want.detail));
      }
      if (expect.listed) {
        assert(
          files.some((f) => f.path === expect.listed),
          `files.json lists ${expect.listed}: ${files.map((f) => f.path)}`,
        );
      }
    },
  };
}

const AUDIO_CASES: FaultCase[] = [
  audioCase("a symbolic link to a category folder elsewhere is followed", async (audio, box) => {
    const elsewhere = join(box.dir, "more", "chime");
    await writeLabelledWavs(join(box.dir, "more"), { chime: 660 }, 3, 6);
    await Deno.symlink(elsewhere, join(audio, "chime"));
  }, { listed: "chime/chime_0.wav" }),
  audioCase("a folder link back to its parent (a loop) is entered once", async (audio) => {
    await Deno.symlink("..", join(audio, "bell", "up"));
  }, { says: ["reached again through symbolic links"] }),
  audioCase("two folder links pointing at each other are skipped", async (audio) => {
    await Deno.symlink("b", join(audio, "bell", "a"));
    await Deno.symlink("a", join(audio, "bell", "b"));
  }, {}),
  audioCase("two file links pointing at each other are rejected as unreadable", async (audio) => {
    await Deno.symlink("y.wav", join(audio, "bell", "x.wav"));
    await Deno.symlink("x.wav", join(audio, "bell", "y.wav"));
  }, { rejected: { path: "bell/x.wav", detail: "symbolic links" } }),
  audioCase("a dangling link is rejected as unreadable", async (audio) => {
    await Deno.symlink("gone.wav", join(audio, "bell", "dangling.wav"));
  }, { rejected: { path: "bell/dangling.wav" } }),
  audioCase("a file name that is not UTF-8 is rejected, not a crash", (audio) => {
    // Deno cannot name such a file; the shell can.
    assert(sh(`cp '${audio}/bell/bell_0.wav' "$(printf '${audio}/bell/bad\\377.wav')"`));
    return Promise.resolve();
  }, { rejected: { path: /^bell\/bad\uFFFD\.wav$/, detail: "not valid UTF-8" } }),
  audioCase("a file the user cannot read is rejected as unreadable", async (audio) => {
    await Deno.writeFile(
      join(audio, "bell", "secret.wav"),
      Deno.readFileSync(join(audio, "bell", "bell_0.wav")),
    );
    await Deno.chmod(join(audio, "bell", "secret.wav"), 0o000);
  }, {
    rejected: { path: "bell/secret.wav", detail: /[Pp]ermission denied/ },
    as: { nobody: true },
    skip: () => CAN_DROP_PRIVILEGES ? undefined : "needs root and setpriv to run as nobody",
  }),
  {
    name: "a file edited in place with its size and mtime kept is seen (the scan re-runs)",
    async setup(box) {
      const audio = join(box.dir, "audio");
      await writeLabelledWavs(audio, CATEGORIES, 3, 5);
      const args = [
        "pipeline",
        E2E_PIPELINE,
        "--store",
        box.store,
        "--until",
        "scan",
        "--set",
        `scan.root=${audio}`,
      ];
      await run(args);
      const path = join(audio, "bell", "bell_1.wav");
      const info = Deno.statSync(path);
      const bytes = Deno.readFileSync(path);
      bytes[bytes.length - 1] ^= 0x5a; // the last sample's low byte: still a valid WAV
      Deno.writeFileSync(path, bytes);
      Deno.utimeSync(path, info.atime!, info.mtime!);
      return args;
    },
    code: 0,
    says: [/scan\s+scan\s+ran\s.*source changed/],
  },
];

Deno.test("store faults: links, loops, unreadable and oddly named files in the audio folder", async (t) => {
  for (const c of AUDIO_CASES) await runCase(t, c);
});

Deno.test("store faults: --verify re-hashes source files that the hash cache would trust", async () => {
  const dir = await Deno.makeTempDir({ prefix: "samout-sources-" });
  try {
    const audio = join(dir, "audio");
    await Deno.mkdir(audio);
    const file = join(audio, "a.wav");
    await Deno.writeTextFile(file, "the real bytes");
    const info = await Deno.stat(file);
    // A cache entry that matches the file's metadata but not its bytes: what a file system
    // without ctime would leave after an in-place edit with size and mtime restored.
    const cache = join(dir, "cache.json");
    await Deno.writeTextFile(
      cache,
      JSON.stringify({
        [file]: {
          size: info.size,
          mtime: info.mtime!.getTime(),
          ctime: info.ctime!.getTime(),
          ino: info.ino,
          sha256: "0".repeat(64),
        },
      }),
    );
    const trusting = await new SourceHasher(cache).hash(audio);
    const full = await new SourceHasher(cache, { full: true }).hash(audio);
    const fresh = await new SourceHasher(join(dir, "none.json")).hash(audio);
    assert(trusting !== fresh, "without --verify the cached (stale) hash is used");
    assertEquals(full, fresh, "--verify hashes the bytes");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- 3. the store's own file system ---------------------------------------------

/** Writes ~1.3 MB in one step: more than a 1 MiB tmpfs holds. */
const BIG_YAML = `name: big
seed: 1
steps:
  small:
    job: write_text
    params: { text: "hello" }
  big:
    job: slow
    params: { chunks: 20, chunk_bytes: 65536, delay_ms: 0 }
`;

const needsMount = () => CAN_MOUNT ? undefined : "needs root to mount a tmpfs";

const STORE_CASES: FaultCase[] = [
  {
    name: "--store naming a file: a clear error, the file untouched",
    async setup(box) {
      await Deno.writeTextFile(join(box.dir, "afile"), "mine");
      return [...box.basic.slice(0, -1), join(box.dir, "afile")];
    },
    code: 1,
    says: ["the store path is a file, not a folder", "afile", "--store DIR"],
    async after(box) {
      assertEquals(await Deno.readTextFile(join(box.dir, "afile")), "mine");
    },
  },
  {
    name: "--store below a file: a clear error",
    async setup(box) {
      await Deno.writeTextFile(join(box.dir, "afile"), "mine");
      return [...box.basic.slice(0, -1), join(box.dir, "afile", "store")];
    },
    code: 1,
    says: ["runs through a file", "afile/store"],
  },
  {
    name: "a read-only store: a cached run succeeds without writing",
    skip: needsMount,
    async setup(box) {
      assert(mountTmpfs(box.store, "1m"));
      await run(box.basic);
      assert(sh(`mount -o remount,ro '${box.store}'`));
      return box.basic;
    },
    code: 0,
    says: ["every step cached"],
  },
  {
    name: "a read-only store with work to do: a clear error; after a remount the run completes",
    skip: needsMount,
    async setup(box) {
      assert(mountTmpfs(box.store, "1m"));
      await run(box.basic);
      assert(sh(`mount -o remount,ro '${box.store}'`));
      return [...box.basic, "--set", "hello.text=hi"];
    },
    code: 1,
    says: ["read-only file system", "store", "remount it read-write"],
    async after(box) {
      assert(sh(`mount -o remount,rw '${box.store}'`));
      await run([...box.basic, "--set", "hello.text=hi"]);
      await assertStoreSound(box.store, "after the remount");
    },
  },
  {
    name:
      "a full disk: a clear error, staging removed, the record final; after freeing space it completes",
    skip: needsMount,
    async setup(box) {
      assert(mountTmpfs(box.store, "1m"));
      const file = join(box.dir, "big.yaml");
      await Deno.writeTextFile(file, BIG_YAML);
      return ["pipeline", file, "--jobs-dir", FIXTURE_JOBS, "--store", box.store];
    },
    code: 1,
    says: ["the disk is full", "free space", "No space left on device"],
    async after(box) {
      const runs = runFiles(box.store);
      assertEquals(runs.length, 1);
      const rec: RunRecord = JSON.parse(Deno.readTextFileSync(join(box.store, "runs", runs[0])));
      assertEquals(rec.status, "failed");
      assert(sh(`mount -o remount,size=4m '${box.store}'`));
      await run([
        "pipeline",
        join(box.dir, "big.yaml"),
        "--jobs-dir",
        FIXTURE_JOBS,
        "--store",
        box.store,
      ]);
      await assertStoreSound(box.store, "after freeing space");
    },
  },
  {
    name:
      "a full disk in the real pipeline (training): no temporary files left; the re-run completes",
    skip: needsMount,
    setup(box) {
      assert(mountTmpfs(box.store, "400k"));
      return Promise.resolve(["pipeline", E2E_PIPELINE, "--store", box.store]);
    },
    code: 1,
    says: ["the disk is full", "No space left on device"],
    async after(box) {
      const leftovers = [...walk(box.store)].filter((p) => /\.tmp$|\.tmp\//.test(p));
      assertEquals(leftovers, [], "no temporary files");
      assert(sh(`mount -o remount,size=4m '${box.store}'`));
      await run(["pipeline", E2E_PIPELINE, "--store", box.store]);
      await assertStoreSound(box.store, "after freeing space");
    },
  },
  {
    name: "a store this user may not write: a clear error naming it",
    skip: () => CAN_DROP_PRIVILEGES ? undefined : "needs root and setpriv to run as nobody",
    async setup(box) {
      await Deno.mkdir(box.store, { mode: 0o755 });
      return box.basic;
    },
    as: { nobody: true },
    code: 1,
    says: ["no permission to write in the store", "chown/chmod"],
  },
];

function* walk(dir: string, rel = ""): Generator<string> {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(rel ? join(dir, rel) : dir)];
  } catch {
    return;
  }
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    yield r;
    if (e.isDirectory) yield* walk(dir, r);
  }
}

Deno.test("store faults: a file as the store, read-only, full, not writable", async (t) => {
  for (const c of STORE_CASES) await runCase(t, c);
});

Deno.test({
  name: "store faults: a run record ends in a final state even when the disk is full",
  ignore: !CAN_MOUNT,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "samout-record-" });
    try {
      assert(mountTmpfs(dir, "64k"));
      const runs = join(dir, "runs");
      const record: RunRecord = {
        format: 1,
        id: "2026-01-01T00-00-00-000Z-p-000000",
        pipeline: { name: "p", file: "p.yaml", sha256: "0".repeat(64), text: "x".repeat(2000) },
        overrides: [],
        seed: 1,
        jobs_dir: "jobs",
        options: {},
        started_at: "2026-01-01T00:00:00.000Z",
        status: "running",
        steps: {
          a: {
            job: "j",
            status: "not-run",
            reason: "new",
            key: "a".repeat(64),
            identity: {
              job: "j",
              version: "1",
              code_hash: "c".repeat(64),
              params: { text: "y".repeat(500) },
              inputs: {},
              sources: {},
              seed: 1,
            },
          },
        },
      };
      const path = writeRunRecord(runs, record);
      sh(`dd if=/dev/zero of='${dir}/filler' bs=1k count=200 2>/dev/null`); // fills the disk
      const done = finishRunRecord(runs, {
        ...record,
        status: "failed",
        error: "the disk is full",
        finished_at: "2026-01-01T00:00:01.000Z",
      });
      assertEquals(done.problem, undefined);
      const back: RunRecord = JSON.parse(Deno.readTextFileSync(path));
      assertEquals(back.status, "failed");
      assertEquals(back.steps.a.key, "a".repeat(64));
      assertStringIncludes(back.shortened ?? "", "full disk");
      assertEquals([...Deno.readDirSync(runs)].map((e) => e.name), [`${record.id}.json`]);
    } finally {
      sh(`umount '${dir}'`);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- 4. training checkpoints ------------------------------------------------------

const DRIVER = new URL("./fixtures/store_faults/train_driver.ts", import.meta.url).pathname;
const TRAIN_PARAMS = JSON.stringify({
  model: { hidden: 16, heads: 2, layers: 1, max_positions: 64 },
  epochs: 3,
  patience: 10,
  log_every_steps: 1,
  checkpoint_every_steps: 2,
  schedule: { kind: "cosine", warmup_steps: 2 },
});

async function train(data: string, work: string, out: string): Promise<CliResult> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", DRIVER, data, work, out, TRAIN_PARAMS],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

/** A damaged checkpoint, and what training must say when it starts again. */
interface CheckpointCase {
  name: string;
  /** Damages the finished run's work folder. */
  damage(work: string): Promise<void>;
  says: (string | RegExp)[];
}

async function flipByte(path: string, at = -100): Promise<void> {
  const b = await Deno.readFile(path);
  const i = at < 0 ? b.length + at : at;
  b[i] ^= 0xff;
  await Deno.writeFile(path, b);
}

const CHECKPOINT_CASES: CheckpointCase[] = [
  {
    name: "a flipped byte in the weights",
    damage: (w) => flipByte(join(w, "checkpoint", "model.safetensors")),
    says: ["model.safetensors does not match its checksum", "previous checkpoint"],
  },
  {
    name: "an edited state.json",
    async damage(w) {
      const p = join(w, "checkpoint", "state.json");
      const s = JSON.parse(await Deno.readTextFile(p));
      await Deno.writeTextFile(p, JSON.stringify({ ...s, bestValLoss: 0.001 }, null, 2) + "\n");
    },
    says: ["state.json", "previous checkpoint"],
  },
  {
    name: "a truncated state.json",
    async damage(w) {
      const p = join(w, "checkpoint", "state.json");
      await Deno.truncate(p, 10);
    },
    says: ["state.json is 10 bytes", "previous checkpoint"],
  },
  {
    name: "an empty optimizer file",
    damage: (w) => Deno.writeFile(join(w, "checkpoint", "optimizer.safetensors"), new Uint8Array()),
    says: ["optimizer.safetensors is 0 bytes", "previous checkpoint"],
  },
  {
    name: "both the checkpoint and the previous one damaged",
    async damage(w) {
      await Deno.truncate(join(w, "checkpoint", "model.safetensors"), 0);
      await Deno.remove(join(w, "checkpoint.prev", "checksums.json"));
    },
    says: ["checksums.json is missing", "starts from the beginning"],
  },
  {
    name: "the best weights so far damaged",
    damage: (w) => flipByte(join(w, "best.safetensors")),
    says: ["best.safetensors does not match its checksum"],
  },
];

Deno.test("store faults: a damaged training checkpoint is never resumed from", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "samout-ckpt-faults-" });
  try {
    const data = join(root, "data");
    await writeTinyBucket(data);
    const ref = await train(data, join(root, "work-ref"), join(root, "out-ref"));
    assertEquals(ref.code, 0, ref.out);
    const refWeights = {
      last: await Deno.readFile(join(root, "out-ref", "last.safetensors")),
      best: await Deno.readFile(join(root, "out-ref", "best.safetensors")),
    };
    for (const [i, c] of CHECKPOINT_CASES.entries()) {
      await t.step(c.name, async () => {
        const work = join(root, `work-${i}`);
        assert(sh(`cp -a '${join(root, "work-ref")}' '${work}'`));
        await c.damage(work);
        const r = await train(data, work, join(root, `out-${i}`));
        assertEquals(r.code, 0, r.out);
        assert(!STACK_LINE.test(r.out), `no stack trace:\n${r.out}`);
        for (const w of c.says) {
          if (typeof w === "string") assertStringIncludes(r.out, w, r.out);
          else assertMatch(r.out, w, r.out);
        }
        for (const name of ["last", "best"] as const) {
          const got = await Deno.readFile(join(root, `out-${i}`, `${name}.safetensors`));
          assert(
            got.length === refWeights[name].length &&
              got.every((x, j) => x === refWeights[name][j]),
            `${name}.safetensors equals the uninterrupted run's`,
          );
        }
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
