// Marks dist/cjs as CommonJS: the package itself is "type": "module".
const fs = require('node:fs');
const path = require('node:path');
const dir = path.join(__dirname, '..', 'dist', 'cjs');
fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'commonjs' }, null, 2) + '\n');
