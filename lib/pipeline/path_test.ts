import { assertEquals } from "../../tests/assert.ts";
import { dirname, fromFileUrl, join, normalize, relative, resolve, toFileUrl } from "./path.ts";

Deno.test("normalize and join collapse dots and slashes", () => {
  assertEquals(normalize("/a//b/./c/../d/"), "/a/b/d");
  assertEquals(normalize("a/../../b"), "../b");
  assertEquals(normalize(""), ".");
  assertEquals(join("/store", "objects", "k"), "/store/objects/k");
  assertEquals(join("rel", "../x"), "x");
});

Deno.test("resolve, dirname and relative", () => {
  assertEquals(resolve("/a/b", "c"), "/a/b/c");
  assertEquals(resolve("/a/b", "/x"), "/x");
  assertEquals(resolve("x"), `${Deno.cwd()}/x`);
  assertEquals(dirname("/a/b/c.ts"), "/a/b");
  assertEquals(dirname("/a"), "/");
  assertEquals(dirname("a"), ".");
  assertEquals(relative("/r/tests/fixtures", "/r/lib/x.ts"), "../../lib/x.ts");
  assertEquals(relative("/r", "/r/jobs/a.ts"), "jobs/a.ts");
  assertEquals(relative("/r", "/r"), "");
});

Deno.test("file URLs round-trip, with special characters encoded", () => {
  const p = "/tmp/a b/#x?.ts";
  const url = toFileUrl(p);
  assertEquals(url, "file:///tmp/a%20b/%23x%3F.ts");
  assertEquals(fromFileUrl(url), p);
});
