import { assertClose, assertEquals, assertThrows } from "./assert.ts";
import { requestGpu } from "../lib/gpu/device.ts";
import {
  FMA_FORMS,
  fmaCeilingWgsl,
  fmaCount,
  runFmaForm,
  VARYING_FACTOR,
} from "../bench/ceiling.ts";

// The ceiling kernel's multiply-adds must really run (a compiler may drop
// work whose result is unused): every form's outputs match the sums its doc
// states, computed here in f64.
Deno.test("fma ceiling: every form computes the documented chain sums", async () => {
  const gpu = await requestGpu();
  const steps = 32;
  const invocations = 130; // not a multiple of the workgroup: the tail runs too
  for (const form of FMA_FORMS) {
    const { out, ms } = await runFmaForm(gpu, form, { steps, invocations, reps: 1 });
    const expected = new Float32Array(invocations);
    for (let i = 0; i < invocations; i++) {
      const x = Math.fround(i * 1e-6);
      let sum = 0;
      for (let j = 0; j < form.chains; j++) {
        let a = j;
        for (let s = 0; s < steps; s++) {
          const y = x + (form.hoisted ? s % form.unroll : s) * 1e-7;
          const scale = form.varying ? VARYING_FACTOR ** Math.floor(s / form.unroll) : 1;
          a += y * scale * (0.5 + j / 100);
        }
        sum += a;
      }
      expected[i] = sum;
    }
    assertClose(out, expected, 1e-5, `form ${JSON.stringify(form)}`);
    assertEquals(Number.isFinite(ms) && ms >= 0, true);
  }
});

Deno.test("fma ceiling: counts and rejects a step count the unrolled loop cannot run", () => {
  assertEquals(fmaCount({ chains: 4, vec4: true, unroll: 16 }, 512), 4 * 4 * 512);
  assertThrows(
    () => fmaCeilingWgsl({ chains: 2, vec4: false, unroll: 8 }, 12),
    "not a multiple of unroll 8",
  );
  assertThrows(
    () => fmaCeilingWgsl({ chains: 2, vec4: true, unroll: 6, hoisted: true, perStore: 4 }, 12),
    "4 per store needs hoisted steps dividing unroll",
  );
  assertThrows(
    () => fmaCeilingWgsl({ chains: 2, vec4: true, unroll: 4, varying: true }, 8),
    "varying needs hoisted",
  );
  // The varying forms' multiplicands change every iteration, in the WGSL itself.
  const varying = fmaCeilingWgsl(
    { chains: 1, vec4: true, unroll: 2, hoisted: true, varying: true, perStore: 2 },
    4,
  );
  assertEquals(varying.includes(`y1 = y1 * vec4<f32>(${VARYING_FACTOR});`), true);
  assertEquals(
    varying.includes("a0 = fma(y1, vec4<f32>(0.50), fma(y0, vec4<f32>(0.50), a0));"),
    true,
  );
});
