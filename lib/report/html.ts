/**
 * Safe text for an HTML page: escaping for element text and attributes, JSON
 * that can sit inside a `<script>` element, and base64 `data:` URLs.
 *
 * @module
 */
import { Buffer } from "node:buffer";

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes `text` for use as HTML element content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/**
 * JSON for the inside of a `<script>` element. Every `<`, `>` and `&` becomes a
 * `\u00XX` escape, so neither `</script>` nor `<!--` can appear; U+2028 and
 * U+2029 are escaped too, for parsers that treat them as line ends. The result
 * is still valid JSON and parses back to the same value.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A `data:` URL holding `bytes` as base64. */
export function dataUrl(mime: string, bytes: Uint8Array): string {
  const base64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  return `data:${mime};base64,${base64}`;
}
