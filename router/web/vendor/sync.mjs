// Copies the pinned GraphiQL and React browser builds from node_modules (installed with `npm ci` from
// package-lock.json) next to this script, where router/src/web.rs embeds them. After changing a version:
//   cd router/web/vendor && npm install --ignore-scripts && node sync.mjs && rm -r node_modules
// `node sync.mjs --check DIR/node_modules` instead compares the vendored files with an install (exit 1 on
// any difference); router/tests/web_vendor.rs runs it on a fresh `npm ci`.
import { copyFileSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Vendored file name -> path inside node_modules. */
const FILES = {
  "graphiql.min.js": "graphiql/graphiql.min.js",
  "graphiql.min.css": "graphiql/graphiql.min.css",
  "react.production.min.js": "react/umd/react.production.min.js",
  "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
};

const here = dirname(fileURLToPath(import.meta.url));
const check = process.argv[2] === "--check";
const from = (check ? process.argv[3] : process.argv[2]) ?? join(here, "node_modules");
let differences = 0;
for (const [name, source] of Object.entries(FILES)) {
  if (check) {
    if (!readFileSync(join(from, source)).equals(readFileSync(join(here, name)))) {
      console.error(`router/web/vendor/${name} differs from ${source} as package-lock.json installs it: run sync.mjs`);
      differences += 1;
    }
  } else {
    copyFileSync(join(from, source), join(here, name));
    console.log(`vendored ${name} from ${source}`);
  }
}
if (check) {
  console.log(`${Object.keys(FILES).length - differences} vendored files match the lockfile, ${differences} differ`);
}
process.exit(differences ? 1 : 0);
