// Copies the pinned GraphiQL and React browser builds from node_modules (installed with `npm ci` from
// package-lock.json) next to this script, where router/src/web.rs embeds them. Run after changing a version:
//   cd router/web/vendor && npm ci --ignore-scripts && node sync.mjs
import { copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Vendored file name -> path inside node_modules. router/tests/web_vendor.rs reads this list too. */
export const FILES = {
  "graphiql.min.js": "graphiql/graphiql.min.js",
  "graphiql.min.css": "graphiql/graphiql.min.css",
  "react.production.min.js": "react/umd/react.production.min.js",
  "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
};

const here = dirname(fileURLToPath(import.meta.url));
const from = process.argv[2] ?? join(here, "node_modules");
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [name, source] of Object.entries(FILES)) {
    copyFileSync(join(from, source), join(here, name));
    console.log(`vendored ${name} from ${source}`);
  }
}
