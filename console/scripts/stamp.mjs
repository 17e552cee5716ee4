// Writes SOURCE_HASH into the build output: a hash of every input of the build (sources, lock
// file, configs). A Python test recomputes it, so a console change without a rebuild fails CI.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const inputs = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"];

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const files = [...inputs.map((f) => join(root, f)), ...walk(join(root, "src"))]
  .map((p) => relative(root, p).split("\\").join("/"))
  .filter((p) => !p.endsWith(".test.ts"))
  .sort();
const hash = createHash("sha256");
for (const file of files) {
  hash.update(file + "\0");
  hash.update(readFileSync(join(root, file)));
  hash.update("\0");
}
const out = join(root, "..", "core", "mqferry", "console_dist", "SOURCE_HASH");
writeFileSync(out, hash.digest("hex") + "\n");
console.log(`stamp: ${files.length} inputs -> ${relative(root, out)}`);
