/**
 * The texture form of the matrix products in {@link ./matmul.ts}: the same
 * register-tiled kernel, reading its two operands through `rgba32float`
 * textures instead of storage buffers.
 *
 * Why: Mesa's llvmpipe (22.x) runs every storage-buffer load as a loop over
 * the SIMD lanes with two branches and a round trip through the stack per
 * lane and component, while a texel fetch is a straight-line gather. On a
 * Zen 3 host the 1024³ product ran at 2.3 GFLOP/s from storage buffers and
 * 12-17 from textures (same tile, same sums). A texel is read by
 * `textureLoad` of a sampled texture, or on software adapters of the same
 * texture bound as a read-only storage texture, llvmpipe's cheapest fetch
 * ({@link TexelFetch}).
 *
 * Each operand is put in its texture once per encode ({@link createPack}):
 * copied in when its rows already have the texture's layout (rows of
 * 256-byte multiples as they are; other rows of whole texels into a "linear"
 * texture, addressed by element index), otherwise packed by a small kernel (a
 * weight read transposed, rows that split texels). Either way one read of the
 * operand per product, against `P·Q·R / (rows·cols)` reads in the loop.
 *
 * The sums are those of the storage kernel: every output adds its products in
 * reduction order 0, 1, 2, … with `fma`, no split, no atomics. Texels past a
 * matrix's edge hold zeros, so sizes need not be multiples of 4: a "pr"
 * reduction runs on to the next multiple of 4 over zero texels, which adds
 * `fma(0, 0, acc) = acc`; results are bit-identical to the storage kernel's
 * (the product tests check this).
 *
 * Limits: a texture is at most `maxTextureDimension2D` texels on a side, so a
 * product whose operands do not fit runs the storage kernel instead
 * ({@link textureFits}, {@link PackedOperand.fits}).
 *
 * @module
 */
import {
  bufferBinding,
  type BufferSlice,
  cachedPipeline,
  createUniformBuffer,
  type Gpu,
  type GpuStep,
} from "../device.ts";
import type { Layout } from "./matmul.ts";
import { encodeInputCopy } from "./texture_inputs.ts";

/**
 * How a texture product reads a texel: `textureLoad` of a sampled texture
 * ("load"), or of the same texture bound as a read-only storage texture
 * ("image"). The same value either way. On llvmpipe (Mesa 22.3, Zen 3) a
 * SIMD group's "load" is a call into a texel function (~159 cycles, and the
 * call spills every live register), an "image" load an inlined gather of
 * the 8 lanes' texels (~64; a nearest-filter `textureSampleLevel`, tried
 * before, ~105, also a call); the bench training step ran 15-17% faster
 * with images than with samples.
 */
export type TexelFetch = "load" | "image";

/**
 * Invocations per subgroup that {@link TextureTile.subgroupX} assumes (llvmpipe's
 * 256-bit SIMD group), and so the width of its workgroups.
 */
export const SUBGROUP_X_SIZE = 8;
const SUBGROUP = SUBGROUP_X_SIZE;

/**
 * Whether a tile's shape allows {@link TextureTile.subgroupX}: one 8x1
 * workgroup per subgroup (all its lanes on the same rows) and rows a multiple
 * of 8 (every lane's load is used).
 */
export function subgroupXFits(tile: { rows: number; wgX: number; wgY: number }): boolean {
  return tile.wgX === SUBGROUP && tile.wgY === 1 && tile.rows % SUBGROUP === 0;
}

/** The register tiling of the texture kernel (the fields matmul.ts's MatmulTile shares). */
export interface TextureTile {
  rows: number;
  cols: number;
  wgX: number;
  wgY: number;
  /** See matmul.ts's MatmulTile.fetch. */
  fetch?: TexelFetch;
  /** See matmul.ts's MatmulTile.subgroupX. */
  subgroupX?: boolean;
}

/** What a texture product computes, besides the tile. */
export interface TextureKernelSpec {
  x: Layout;
  bias: boolean;
  accumulate: boolean;
  /** Q % 4 == 0: `c` (and `bias`) are read and written as vec4s. */
  vec4Out: boolean;
  tile: TextureTile;
  /** X is packed linearly, this many texels per texture row (see {@link PackedOperand.linearWidth}). */
  xLinear?: number;
  /** Y likewise (no zero rows past R: only for "rp" or R % 4 == 0). */
  yLinear?: number;
  /**
   * With `accumulate` and `vec4Out`: C's old values are read from `tc`, a copy
   * of C packed linearly this many texels wide (the texel `(p * Q + q) / 4`),
   * instead of from C itself (on llvmpipe an image gather costs about 40
   * cycles a SIMD group, a storage read about 860). The same values.
   */
  oldLinear?: number;
  /**
   * "rp" only: the reduction in blocks of this many rows, each summed from
   * zero and added to the running total in block order (see matmul.ts's
   * MatmulBuffers.blockRows).
   */
  blockRows?: number;
}

function kernelKey(s: TextureKernelSpec): string {
  const t = s.tile;
  return `matmulTex:${s.x}${s.xLinear ? `:xlinear${s.xLinear}` : ""}${
    s.yLinear ? `:ylinear${s.yLinear}` : ""
  }:` +
    `${t.fetch && t.fetch !== "load" ? `${t.fetch}:` : ""}b${+s.bias}:acc${+s.accumulate}:` +
    `${s.vec4Out ? "v4" : "s"}:${t.rows}x${t.cols}:${t.wgX}x${t.wgY}` +
    (s.blockRows ? `:blocks${s.blockRows}` : "") + (t.subgroupX ? ":sgx" : "") +
    (s.oldLinear ? `:oldlinear${s.oldLinear}` : "");
}

/** The texel of a linear pack `width` texels wide holding its element `index` (an u32 expression). */
function linearTexel(index: string, width: number): string {
  return `vec2<i32>(i32((${index}) % ${width}u), i32((${index}) / ${width}u))`;
}

/**
 * WGSL reading texel (`col`, `row`) of the packed operand `t` (i32
 * expressions), or, in a linear pack `linearWidth` texels wide, its texel
 * number `index` (an u32 expression).
 */
function operandTexel(
  t: "tx" | "ty",
  linearWidth: number | undefined,
  index: string,
  col: string,
  row: string,
): string {
  const at = linearWidth ? linearTexel(index, linearWidth) : `vec2<i32>(${col}, ${row})`;
  return `textureLoad(${t}, ${at}, 0)`;
}

/**
 * WGSL for `C[P,Q] = Σ_r X[p,r] · Y[r,q] (+ bias[Q]) (+ C)`; dims = (P, Q, R).
 * `tx` holds X as packed by {@link createPack}: for "pr" the texel (r/4, p)
 * is X[p, r..r+3]; for "rp" the texel (p/4, r) is X[p..p+3, r]. `ty` holds Y
 * with the texel (q/4, r) = Y[r, q..q+3]. An invocation's columns come in
 * groups of 4 spaced `wgX * 4` apart (neighbouring invocations read
 * neighbouring texels); `rows` and `cols` must be multiples of 4.
 */
function loadMatmulWgsl(s: TextureKernelSpec): string {
  const { rows: TR, cols: TC, wgX, wgY } = s.tile;
  if (TR % 4 !== 0 || TC % 4 !== 0) {
    throw new Error(`texture matmul: tile ${TR}x${TC} is not a multiple of 4 in both sides`);
  }
  const lines: string[] = [];
  const groupOffset = (g: number) => g * wgX * 4; // column offset of group g, relative to q0
  for (let i = 0; i < TR; i++) {
    for (let j = 0; j < TC; j++) lines.push(`  var acc_${i}_${j} = 0.0;`);
  }
  for (let g = 0; g < TC / 4; g++) {
    lines.push(`  let yb${g} = i32(min((q0 + ${groupOffset(g)}u) / 4u, QT - 1u));`);
  }
  const sg = !!s.tile.subgroupX;
  if (sg && !subgroupXFits(s.tile)) {
    throw new Error(
      `texture matmul: subgroupX needs ${SUBGROUP}x1 workgroups and rows a multiple of ${SUBGROUP}`,
    );
  }
  if (s.x === "pr") {
    // With subgroupX, lane l reads row p0 + 8b + l for block b, and every lane takes row i's
    // texel from lane i % 8 (the rows are the same for all lanes: wgY = 1).
    const xRows = sg ? TR / SUBGROUP : TR;
    for (let i = 0; i < xRows; i++) {
      const row = sg ? `p0 + ${i * SUBGROUP}u + lane` : `p0 + ${i}u`;
      lines.push(
        s.xLinear
          ? `  let xr${i} = min(${row}, P - 1u) * u32(RT);` // first texel of the row
          : `  let xr${i} = i32(min(${row}, P - 1u));`,
      );
    }
    lines.push(`  for (var r4 = 0; r4 < RT; r4++) {`);
    lines.push(`    let r = r4 * 4;`);
    // Y's 4 steps first, then one X row at a time: few X values live at once.
    for (let k = 0; k < 4; k++) {
      for (let g = 0; g < TC / 4; g++) {
        const texel = operandTexel(
          "ty",
          s.yLinear,
          `u32(r + ${k}) * QT + u32(yb${g})`,
          `yb${g}`,
          `r + ${k}`,
        );
        lines.push(`    let yg${g}_${k} = ${texel};`);
      }
    }
    if (sg) {
      for (let b = 0; b < TR / SUBGROUP; b++) {
        const texel = operandTexel("tx", s.xLinear, `xr${b} + u32(r4)`, "r4", `xr${b}`);
        lines.push(`    let xl${b} = ${texel};`);
      }
    }
    for (let i = 0; i < TR; i++) {
      if (sg) {
        lines.push(`    let xv${i} = subgroupBroadcast(xl${i >> 3}, ${i & 7}u);`);
      } else {
        const texel = operandTexel("tx", s.xLinear, `xr${i} + u32(r4)`, "r4", `xr${i}`);
        lines.push(`    let xv${i} = ${texel};`);
      }
      // The 4 steps as one expression, fma(x3, y3, fma(x2, y2, ...acc)): the
      // same sums in the same order, one store to the accumulator per
      // iteration (llvmpipe blends every store inside a loop with the
      // loop's lane mask).
      for (let j = 0; j < TC; j++) {
        let sum = `acc_${i}_${j}`;
        for (let k = 0; k < 4; k++) sum = `fma(xv${i}[${k}], yg${j >> 2}_${k}[${j & 3}], ${sum})`;
        lines.push(`    acc_${i}_${j} = ${sum};`);
      }
    }
  } else {
    for (let g = 0; g < TR / 4; g++) {
      lines.push(`  let xb${g} = i32(min(p0 / 4u + ${g}u, PT - 1u));`);
    }
    lines.push(`  let r0 = i32(dims.w);`);
    lines.push(`  let rEnd = r0 + i32(R);`);
    // Steps of 4 chained into one store per accumulator (as for "pr"), then
    // the last R % 4 one at a time: the same sums in the same order. With
    // blocks, each block sums into blk_* from zero, then joins acc_*.
    // With subgroupX, X's TR texels of 4 steps (group g, step k: combination c = 4g + k) are
    // read 8 at a time, lane l reading combination 8s + l in slot s, and broadcast.
    if (sg) {
      for (let slot = 0; slot < TR / SUBGROUP; slot++) {
        const c = `(${slot * SUBGROUP}u + lane)`;
        lines.push(`  let sgStep${slot} = i32(${c} & 3u);`);
        lines.push(`  let sgXb${slot} = i32(min(p0 / 4u + (${c} >> 2u), PT - 1u));`);
      }
    }
    const sgLoads = () => {
      for (let slot = 0; slot < TR / SUBGROUP; slot++) {
        const row = `r + sgStep${slot}`;
        const texel = operandTexel(
          "tx",
          s.xLinear,
          `u32(${row}) * PT + u32(sgXb${slot})`,
          `sgXb${slot}`,
          row,
        );
        lines.push(`    let xl${slot} = ${texel};`);
      }
      for (let c = 0; c < TR; c++) {
        lines.push(
          `    let xg${c >> 2}_${c & 3} = subgroupBroadcast(xl${c >> 3}, ${c & 7}u);`,
        );
      }
    };
    const step = (k: number, withX = true) => {
      const row = k === 0 ? "r" : `r + ${k}`;
      // X's texel (p/4, r) holds X[p..p+3, r]; Y's (q/4, r) holds Y[r, q..q+3].
      for (
        const [t, name, linear, width, groups] of [
          ["tx", "xg", s.xLinear, "PT", withX ? TR / 4 : 0],
          ["ty", "yg", s.yLinear, "QT", TC / 4],
        ] as const
      ) {
        const base = name === "xg" ? "xb" : "yb";
        for (let g = 0; g < groups; g++) {
          const texel = operandTexel(
            t,
            linear,
            `u32(${row}) * ${width} + u32(${base}${g})`,
            `${base}${g}`,
            row,
          );
          lines.push(`    let ${name}${g}_${k} = ${texel};`);
        }
      }
    };
    const sums = s.blockRows ? "blk" : "acc";
    const accumulate = (steps: number) => {
      for (let i = 0; i < TR; i++) {
        for (let j = 0; j < TC; j++) {
          let sum = `${sums}_${i}_${j}`;
          for (let k = 0; k < steps; k++) {
            sum = `fma(xg${i >> 2}_${k}[${i & 3}], yg${j >> 2}_${k}[${j & 3}], ${sum})`;
          }
          lines.push(`    ${sums}_${i}_${j} = ${sum};`);
        }
      }
    };
    const end = s.blockRows ? "bEnd" : "rEnd";
    if (s.blockRows) {
      for (let i = 0; i < TR; i++) {
        for (let j = 0; j < TC; j++) lines.push(`  var blk_${i}_${j} = 0.0;`);
      }
      lines.push(`  for (var b = r0; b < rEnd; b += ${s.blockRows}) {`);
      lines.push(`  let bEnd = min(b + ${s.blockRows}, rEnd);`);
      for (let i = 0; i < TR; i++) {
        for (let j = 0; j < TC; j++) lines.push(`  blk_${i}_${j} = 0.0;`);
      }
      lines.push(`  var r = b;`);
    } else {
      lines.push(`  var r = r0;`);
    }
    lines.push(`  for (; r + 4 <= ${end}; r += 4) {`);
    if (sg) sgLoads();
    for (let k = 0; k < 4; k++) step(k, !sg);
    accumulate(4);
    lines.push(`  }`);
    lines.push(`  for (; r < ${end}; r++) {`);
    step(0);
    accumulate(1);
    if (s.blockRows) {
      lines.push(`  }`);
      // The first block's sum as it is (0 + x is not x for x = -0), then total + block.
      for (let i = 0; i < TR; i++) {
        for (let j = 0; j < TC; j++) {
          lines.push(
            `  acc_${i}_${j} = select(acc_${i}_${j} + blk_${i}_${j}, blk_${i}_${j}, b == r0);`,
          );
        }
      }
    }
  }
  lines.push(`  }`);
  // Epilogue, as in the storage kernel: loads at clamped indices outside the
  // guards (a load inside a branch compiles slowly on llvmpipe).
  for (let g = 0; g < TC / 4; g++) {
    lines.push(`  let col${g} = q0 + ${groupOffset(g)}u;`);
    if (s.bias && s.vec4Out) lines.push(`  let bias${g} = bias[min(col${g}, Q - 1u) / 4u];`);
    if (s.bias && !s.vec4Out) {
      for (let k = 0; k < 4; k++) {
        lines.push(`  let bias${g}_${k} = bias[min(col${g} + ${k}u, Q - 1u)];`);
      }
    }
  }
  for (let i = 0; i < TR; i++) {
    lines.push(`  let row${i} = min(p0 + ${i}u, P - 1u) * Q;`);
    for (let g = 0; g < TC / 4; g++) {
      if (s.vec4Out) {
        let value = `vec4<f32>(${[0, 1, 2, 3].map((k) => `acc_${i}_${4 * g + k}`).join(", ")})`;
        if (s.bias) value += ` + bias${g}`;
        if (s.accumulate && s.oldLinear) {
          const at = linearTexel(`(row${i} + min(col${g}, Q - 1u)) / 4u`, s.oldLinear);
          lines.push(`  let old_${i}_${g} = textureLoad(tc, ${at}, 0);`);
          value = `old_${i}_${g} + (${value})`;
        } else if (s.accumulate) {
          lines.push(`  let old_${i}_${g} = c[(row${i} + min(col${g}, Q - 1u)) / 4u];`);
          value = `old_${i}_${g} + (${value})`;
        }
        lines.push(
          `  if (p0 + ${i}u < P && col${g} < Q) { c[(row${i} + col${g}) / 4u] = ${value}; }`,
        );
      } else {
        for (let k = 0; k < 4; k++) {
          const col = `col${g} + ${k}u`;
          const at = `row${i} + min(${col}, Q - 1u)`;
          let value = `acc_${i}_${4 * g + k}`;
          if (s.bias) value += ` + bias${g}_${k}`;
          if (s.accumulate) value = `c[${at}] + (${value})`;
          lines.push(`  let v_${i}_${g}_${k} = ${value};`);
          lines.push(
            `  if (p0 + ${i}u < P && ${col} < Q) { c[row${i} + ${col}] = v_${i}_${g}_${k}; }`,
          );
        }
      }
    }
  }
  const elem = s.vec4Out ? "vec4<f32>" : "f32";
  return /* wgsl */ `
// dims.x = P (output rows), dims.y = Q (output columns), dims.z = R (reduction length),
// dims.w = first texture row of the reduction ("rp")
@group(0) @binding(0) var<uniform> dims: vec4<u32>;
@group(0) @binding(1) var tx: texture_2d<f32>;                     // X, layout "${s.x}", packed
@group(0) @binding(2) var ty: texture_2d<f32>;                     // Y [R, Q], packed
@group(0) @binding(3) var<storage, read_write> c: array<${elem}>;  // C [P, Q]
${s.bias ? `@group(0) @binding(4) var<storage, read> bias: array<${elem}>;  // [Q]` : ""}
${
    s.oldLinear
      ? `@group(0) @binding(5) var tc: texture_2d<f32>;                     // C's old values`
      : ""
  }

@compute @workgroup_size(${wgX}, ${wgY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${
    sg ? ",\n        @builtin(subgroup_invocation_id) lane: u32" : ""
  }) {
  let P = dims.x;
  let Q = dims.y;
  let R = dims.z;
  let QT = (Q + 3u) / 4u;
  let PT = (P + 3u) / 4u;
  let RT = i32((R + 3u) / 4u);
  let p0 = (wid.y * ${wgY}u + lid.y) * ${TR}u;
  let q0 = wid.x * ${wgX * TC}u + lid.x * 4u;
  // With subgroupX every lane stays to the end (its loads are clamped, its stores guarded):
  // a lane that returned would have nothing to broadcast.
  if (p0 >= P${sg ? "" : " || q0 >= Q"}) { return; }
${lines.join("\n")}
}
`;
}

/**
 * The texture product's WGSL ({@link loadMatmulWgsl}); with `tile.fetch ==
 * "image"` the operands are read-only storage textures, read by
 * `textureLoad(t, texel)`.
 */
export function textureMatmulWgsl(s: TextureKernelSpec): string {
  const code = loadMatmulWgsl(s);
  if (s.tile.fetch !== "image") return code;
  return code
    .replaceAll("texture_2d<f32>;", "texture_storage_2d<rgba32float, read>;")
    .replace(/textureLoad\((t[xyc]), ([^;]*), 0\);/g, "textureLoad($1, $2);");
}

/** Invocations per workgroup of the pack. */
const PACK_WG = 64;

/**
 * WGSL of the pack: texel (t, row) of `dst` = the logical matrix's
 * (row, 4t..4t+3), zero past `cols` and for rows in [rows, padRows). The
 * logical element (i, j) sits at `i * cols + j`, or with `transposed` at
 * `j * rows + i` (a weight stored [out, in] read as [in, out]). `vec4`
 * (not transposed, cols % 4 == 0) reads whole texels.
 */
function packWgsl(transposed: boolean, vec4: boolean, linearWidth: number): string {
  const read = vec4
    ? `src4[min(row, rows - 1u) * (cols / 4u) + t]`
    : `vec4<f32>(${
      [0, 1, 2, 3].map((k) =>
        `select(0.0, src[${
          transposed
            ? `min(4u * t + ${k}u, cols - 1u) * rows + min(row, rows - 1u)`
            : `min(row, rows - 1u) * cols + min(4u * t + ${k}u, cols - 1u)`
        }], 4u * t + ${k}u < cols)`
      ).join(", ")
    })`;
  return /* wgsl */ `
// dims.x = rows, dims.y = cols of the logical matrix, dims.z = rows to write (>= rows)
@group(0) @binding(0) var<uniform> dims: vec4<u32>;
@group(0) @binding(1) var<storage, read> ${vec4 ? "src4: array<vec4<f32>>" : "src: array<f32>"};
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

// One texel per invocation, ${PACK_WG} per workgroup (on llvmpipe 30% faster
// than 8-invocation workgroups looping over rows), over a flat 2-D grid.
@compute @workgroup_size(${PACK_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let rows = dims.x;
  let cols = dims.y;
  let width = (cols + 3u) / 4u;
  let i = (wid.y * nwg.x + wid.x) * ${PACK_WG}u + lid;
  if (i >= width * dims.z) { return; }
  let t = i % width;
  let row = i / width;
  let v = ${read};
  textureStore(dst, ${
    linearWidth ? linearTexel("i", linearWidth) : "vec2<i32>(i32(t), i32(row))"
  }, select(vec4<f32>(0.0), v, row < rows));
}
`;
}

/** Shape of one pack: the logical matrix [rows, cols] and the rows to write. */
export interface PackDims {
  rows: number;
  cols: number;
  /** Rows written (rows past `rows` get zeros); default `rows`. */
  padRows?: number;
}

/**
 * A packed operand: a texture that grows to the largest shape encoded so far
 * (a new texture, new bind groups), refreshed from its buffer by every encode.
 */
export interface PackedOperand {
  /** Records the pack of the buffer's current contents (a dispatch). */
  encode(pass: GPUComputePassEncoder, dims: PackDims): void;
  /**
   * Whether {@link encodeCopy} can pack `dims`: the buffer already has the
   * texture's layout (not transposed, rows of a multiple of 64 floats, so
   * 256-byte aligned as a copy needs, no padding rows, a 16-byte aligned start).
   */
  copyable(dims: PackDims): boolean;
  /**
   * Records the same pack as a buffer-to-texture copy (outside any pass), for
   * {@link copyable} shapes: on llvmpipe 20-30x cheaper than the dispatch.
   */
  encodeCopy(enc: GPUCommandEncoder, dims: PackDims): void;
  /**
   * 0, or the width of a linear texture: the matrix's texels in row-major
   * order, wrapped at this many texels per texture row, so any row length (a
   * multiple of 4 floats) is a plain copy of the buffer. The products address
   * it by element index instead of (texel, row).
   */
  linearWidth(): number;
  /** Whether a logical [rows, cols] matrix fits in this pack's texture on this device. */
  fits(rows: number, cols: number): boolean;
  /** The texture's view as of the last encode. */
  view(): GPUTextureView;
  /** Bumped whenever {@link view} changes (bind groups must be rebuilt). */
  generation(): number;
  destroy(): void;
}

/** Bytes per row a buffer-to-texture copy needs a multiple of. */
const COPY_ROW_ALIGNMENT = 256;
/** Bytes per rgba32float texel (a copy's buffer offset is a multiple of it). */
const TEXEL_BYTES = 16;

/**
 * Whether a row-major `[*, cols]` matrix in `src` can be copied into a pack as
 * it is: rows of 256-byte multiples (a copy's `bytesPerRow`) for a 2-D pack,
 * whole texels for a linear one; a 16-byte-aligned start either way.
 */
export function packCopyable(src: GPUBuffer | BufferSlice, cols: number, linear: boolean): boolean {
  const offset = "buffer" in src ? src.offset ?? 0 : 0;
  const rowsAligned = linear ? cols % 4 === 0 : (cols * 4) % COPY_ROW_ALIGNMENT === 0;
  return rowsAligned && offset % TEXEL_BYTES === 0;
}

/**
 * Packs the matrix in `src` (row-major [rows, cols], or with `transposed` a
 * [cols, rows] buffer read as its transpose) into an `rgba32float` texture of
 * `ceil(cols / 4) x padRows` texels, or with `linearWidth` into a linear
 * texture that many texels wide ({@link PackedOperand.linearWidth}).
 */
export function createPack(
  gpu: Gpu,
  src: GPUBuffer | BufferSlice,
  transposed: boolean,
  label: string,
  linearWidth = 0,
): PackedOperand {
  const linear = linearWidth > 0;
  if (linear && transposed) throw new Error(`${label}: a linear pack cannot be transposed`);
  if (linear && linearWidth % 16 !== 0) {
    // A copy's rows are multiples of 256 bytes.
    throw new Error(`${label}: a linear pack's width must be a multiple of 16 texels`);
  }
  const uniform = createUniformBuffer(gpu, 16, `${label}:dims`);
  const dimsData = new Uint32Array(4);
  let texture: GPUTexture | undefined;
  let view: GPUTextureView | undefined;
  let generation = 0;
  const bindGroups = new Map<boolean, { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup }>();
  const resource = "buffer" in src
    ? { buffer: src.buffer, offset: src.offset ?? 0, size: src.size }
    : { buffer: src };
  const ensureTexture = (width: number, rows: number) => {
    if (texture && texture.width >= width && texture.height >= rows) return texture;
    const size = [Math.max(width, texture?.width ?? 0), Math.max(rows, texture?.height ?? 0)];
    texture?.destroy();
    texture = gpu.device.createTexture({
      label,
      size,
      format: "rgba32float",
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING |
        GPUTextureUsage.COPY_DST,
    });
    view = texture.createView();
    bindGroups.clear();
    generation++;
    return texture;
  };
  return {
    encode(pass, { rows, cols, padRows = rows }) {
      const width = Math.ceil(cols / 4);
      if (linear) {
        if (padRows !== rows) throw new Error(`${label}: a linear pack has no padding rows`);
        ensureTexture(linearWidth, Math.max(1, Math.ceil(rows * width / linearWidth)));
      } else {
        ensureTexture(width, padRows);
      }
      const vec4 = !transposed && cols % 4 === 0;
      let bound = bindGroups.get(vec4);
      if (!bound) {
        const key = `matmulPack:${transposed ? "T" : "N"}:${vec4 ? "v4" : "s"}${
          linear ? `:linear${linearWidth}` : ""
        }`;
        const pipeline = cachedPipeline(gpu, key, packWgsl(transposed, vec4, linearWidth), "main");
        const bindGroup = gpu.device.createBindGroup({
          label,
          layout: pipeline.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: uniform } },
            { binding: 1, resource },
            { binding: 2, resource: view! },
          ],
        });
        bindGroups.set(vec4, bound = { pipeline, bindGroup });
      }
      dimsData.set([rows, cols, padRows, 0]);
      gpu.device.queue.writeBuffer(uniform, 0, dimsData);
      pass.setPipeline(bound.pipeline);
      pass.setBindGroup(0, bound.bindGroup);
      const groups = Math.ceil(width * padRows / PACK_WG);
      const x = Math.min(groups, 65535);
      pass.dispatchWorkgroups(x, Math.ceil(groups / x));
    },
    copyable({ rows, cols, padRows = rows }) {
      return !transposed && padRows === rows && packCopyable(src, cols, linear);
    },
    encodeCopy(enc, dims) {
      if (!this.copyable(dims)) {
        throw new Error(`${label}: a [${dims.rows}, ${dims.cols}] pack cannot be a copy`);
      }
      const width = dims.cols / 4;
      if (dims.rows === 0) return;
      if (linear) {
        const texels = dims.rows * width;
        const texture = ensureTexture(linearWidth, Math.max(1, Math.ceil(texels / linearWidth)));
        encodeInputCopy(enc, src, texture, texels, linearWidth);
        return;
      }
      enc.copyBufferToTexture(
        { buffer: resource.buffer, offset: resource.offset ?? 0, bytesPerRow: dims.cols * 4 },
        { texture: ensureTexture(width, dims.rows) },
        [width, dims.rows],
      );
    },
    linearWidth: () => linearWidth,
    fits: (rows, cols) =>
      linear
        ? linearWidth <= gpu.limits.maxTextureDimension2D &&
          Math.ceil(rows * Math.ceil(cols / 4) / linearWidth) <= gpu.limits.maxTextureDimension2D
        : textureFits(gpu, rows, cols),
    view() {
      if (!view) throw new Error(`${label}: encode the pack before reading its view`);
      return view;
    },
    generation: () => generation,
    destroy() {
      texture?.destroy();
      uniform.destroy();
    },
  };
}

/** Whether a logical [rows, cols] operand fits in one texture of this device. */
export function textureFits(gpu: Gpu, rows: number, cols: number): boolean {
  const max = gpu.limits.maxTextureDimension2D;
  return rows <= max && Math.ceil(cols / 4) <= max;
}

/** The texture product's operands and output (see matmul.ts's createProduct). */
export interface TextureProductBuffers {
  x: PackedOperand;
  y: PackedOperand;
  c: GPUBuffer | BufferSlice;
  bias?: GPUBuffer | BufferSlice;
  accumulate: boolean;
  /** Texture row where the reduction starts, for "rp" (a block of a longer packed matrix). */
  rowOffset: number;
  /** "rp": the reduction in blocks of this many rows (see {@link TextureKernelSpec.blockRows}). */
  blockRows?: number;
  /**
   * A linear pack of C that the caller has filled with C's values before the
   * product (see {@link TextureKernelSpec.oldLinear}); encodes with `readOld`
   * then add to those instead of reading C. Needs `accumulate` and Q % 4 == 0.
   */
  old?: PackedOperand;
}

/**
 * `C[P,Q] = Σ_r X[p,r] · Y[r,q] (+ bias) (+ C)` from packed operands; the
 * caller encodes the packs first, in the same pass.
 */
export function createTextureProduct(
  gpu: Gpu,
  buffers: TextureProductBuffers,
  x: Layout,
  tile: TextureTile,
  label: string,
): GpuStep<{ P: number; Q: number; R: number; readOld?: boolean }> {
  const uniform = createUniformBuffer(gpu, 16, `${label}:dims`);
  const dimsData = new Uint32Array(4);
  // Bind groups per (vec4 output, operand generations).
  let cached: { key: string; pipeline: GPUComputePipeline; bindGroup: GPUBindGroup } | undefined;
  return {
    encode(pass, { P, Q, R, readOld }) {
      if (P === 0 || Q === 0) return;
      const old = readOld ? buffers.old : undefined;
      if (old && (!buffers.accumulate || Q % 4 !== 0)) {
        throw new Error(`${label}: C's old values are read from a texture only for vec4 sums`);
      }
      const spec: TextureKernelSpec = {
        x,
        bias: buffers.bias !== undefined,
        accumulate: buffers.accumulate,
        vec4Out: Q % 4 === 0,
        tile,
        xLinear: buffers.x.linearWidth(),
        yLinear: buffers.y.linearWidth(),
        blockRows: x === "rp" ? buffers.blockRows : undefined,
        oldLinear: old?.linearWidth(),
      };
      const key = `${kernelKey(spec)}@${buffers.x.generation()}:${buffers.y.generation()}` +
        (old ? `:${old.generation()}` : "");
      if (cached?.key !== key) {
        const pipeline = cachedPipeline(gpu, kernelKey(spec), textureMatmulWgsl(spec), "main");
        const entries: GPUBindGroupEntry[] = [
          { binding: 0, resource: { buffer: uniform } },
          { binding: 1, resource: buffers.x.view() },
          { binding: 2, resource: buffers.y.view() },
          { binding: 3, resource: bufferBinding(buffers.c) },
        ];
        if (buffers.bias) entries.push({ binding: 4, resource: bufferBinding(buffers.bias) });
        if (old) entries.push({ binding: 5, resource: old.view() });
        const bindGroup = gpu.device.createBindGroup({
          label,
          layout: pipeline.getBindGroupLayout(0),
          entries,
        });
        cached = { key, pipeline, bindGroup };
      }
      dimsData.set([P, Q, R, buffers.rowOffset]);
      gpu.device.queue.writeBuffer(uniform, 0, dimsData);
      pass.setPipeline(cached.pipeline);
      pass.setBindGroup(0, cached.bindGroup);
      pass.dispatchWorkgroups(
        Math.ceil(Q / (tile.cols * tile.wgX)),
        Math.ceil(P / (tile.rows * tile.wgY)),
      );
    },
    destroy() {
      uniform.destroy();
    },
  };
}
