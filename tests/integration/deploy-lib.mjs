// Shared by the deployment tests (tests/integration/deploy-*.test.mjs):
// deploy/'s files, read with real parsers, and the checkers they go through.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT, PROFLABD } from './helpers.mjs';

export const DEPLOY = path.join(REPO_ROOT, 'deploy');

/** Every file under deploy/, relative to it. */
export function deployFiles(dir = DEPLOY) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...deployFiles(p));
    else out.push(path.relative(DEPLOY, p));
  }
  return out.sort();
}

export const readJson = (rel) => JSON.parse(fs.readFileSync(path.join(DEPLOY, rel), 'utf8'));

/** All documents of a YAML file (npm `yaml`, YAML 1.2; duplicate keys and any error fail). */
export function readYaml(rel) {
  const docs = parseAllDocuments(fs.readFileSync(path.join(DEPLOY, rel), 'utf8'), { uniqueKeys: true, strict: true });
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${rel}: ${d.errors.map((e) => e.message).join('; ')}`);
  }
  return docs.map((d) => d.toJS()).filter((d) => d !== null);
}

/**
 * Renders a Terraform template that uses only `${jsonencode(NAME)}`
 * interpolations (what the module's container-definitions template does);
 * any other template syntax is refused, so the test cannot render something
 * Terraform would not.
 */
export function renderJsonTemplate(text, vars) {
  const rest = text.replace(/\$\{jsonencode\(([a-z_][a-z0-9_]*)\)\}/g, (_, name) => {
    if (!(name in vars)) throw new Error(`template variable ${name} not given`);
    return JSON.stringify(vars[name]);
  });
  if (/\$\{|%\{/.test(rest)) throw new Error('template has syntax beyond ${jsonencode(NAME)}');
  return JSON.parse(rest);
}

export function templateVars(text) {
  return [...new Set([...text.matchAll(/\$\{jsonencode\(([a-z_][a-z0-9_]*)\)\}/g)].map((m) => m[1]))].sort();
}

/** botocore's ECS model (Debian's python3-botocore, whose data is plain JSON), or null. */
export function ecsModel() {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import botocore, os; print(os.path.dirname(botocore.__file__))'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const dir = path.join(r.stdout.trim(), 'data', 'ecs');
  if (!fs.existsSync(dir)) return null;
  const version = fs.readdirSync(dir).sort().pop();
  const file = path.join(dir, version, 'service-2.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  if (fs.existsSync(`${file}.gz`)) return JSON.parse(zlib.gunzipSync(fs.readFileSync(`${file}.gz`)).toString('utf8'));
  return null;
}

/**
 * Checks VALUE against botocore shape SHAPE, recursively: member names,
 * required members, types (structure/list/map/string/integer/long/boolean/
 * double/float/timestamp), enums, min/max. Returns a list of problems.
 */
export function checkShape(model, shapeName, value, where = '$', problems = []) {
  const shape = model.shapes[shapeName];
  if (!shape) {
    problems.push(`${where}: unknown shape ${shapeName}`);
    return problems;
  }
  const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  switch (shape.type) {
    case 'structure':
      if (!isObj(value)) { problems.push(`${where}: expected an object (${shapeName})`); break; }
      for (const req of shape.required || []) if (!(req in value)) problems.push(`${where}: missing required ${req} (${shapeName})`);
      for (const [k, v] of Object.entries(value)) {
        const m = shape.members[k];
        if (!m) problems.push(`${where}.${k}: not a member of ${shapeName}`);
        else checkShape(model, m.shape, v, `${where}.${k}`, problems);
      }
      break;
    case 'list':
      if (!Array.isArray(value)) { problems.push(`${where}: expected a list (${shapeName})`); break; }
      if (shape.min !== undefined && value.length < shape.min) problems.push(`${where}: fewer than ${shape.min} items`);
      if (shape.max !== undefined && value.length > shape.max) problems.push(`${where}: more than ${shape.max} items`);
      value.forEach((v, i) => checkShape(model, shape.member.shape, v, `${where}[${i}]`, problems));
      break;
    case 'map':
      if (!isObj(value)) { problems.push(`${where}: expected a map (${shapeName})`); break; }
      for (const [k, v] of Object.entries(value)) {
        checkShape(model, shape.key.shape, k, `${where}{${k}}`, problems);
        checkShape(model, shape.value.shape, v, `${where}.${k}`, problems);
      }
      break;
    case 'string':
      if (typeof value !== 'string') { problems.push(`${where}: expected a string (${shapeName})`); break; }
      if (shape.enum && !shape.enum.includes(value)) problems.push(`${where}: ${JSON.stringify(value)} is not one of ${shape.enum.join(', ')}`);
      if (shape.min !== undefined && value.length < shape.min) problems.push(`${where}: shorter than ${shape.min}`);
      if (shape.max !== undefined && value.length > shape.max) problems.push(`${where}: longer than ${shape.max}`);
      break;
    case 'integer':
    case 'long':
      if (!Number.isInteger(value)) { problems.push(`${where}: expected an integer (${shapeName})`); break; }
      if (shape.min !== undefined && value < shape.min) problems.push(`${where}: below ${shape.min}`);
      if (shape.max !== undefined && value > shape.max) problems.push(`${where}: above ${shape.max}`);
      break;
    case 'double':
    case 'float':
      if (typeof value !== 'number') problems.push(`${where}: expected a number (${shapeName})`);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${where}: expected a boolean (${shapeName})`);
      break;
    case 'timestamp':
    case 'blob':
      if (typeof value !== 'string' && typeof value !== 'number') problems.push(`${where}: expected a ${shape.type}`);
      break;
    default:
      problems.push(`${where}: shape type ${shape.type} not handled`);
  }
  return problems;
}

/** The environment variables `proflabd --help` names (the service's real settings). */
export function proflabdSettings() {
  const r = spawnSync(PROFLABD, ['--help'], { encoding: 'utf8' });
  return new Set([...`${r.stdout}${r.stderr}`.matchAll(/\b(?:LAB|PROFLAB|APP|NODE)_[A-Z_]+\b|\bPORT\b/g)].map((m) => m[0]));
}

/** Series names (histogram parts included) in a Prometheus text exposition. */
export function exportedSeries(text) {
  const names = new Set();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

/** Every PromQL expression of a Grafana dashboard: panel targets and query variables. */
export function dashboardQueries(dash) {
  const out = [];
  const panels = (list) => {
    for (const p of list || []) {
      for (const t of p.targets || []) if (t.expr) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      panels(p.panels);
    }
  };
  panels(dash.panels);
  for (const v of dash.templating?.list || []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const m = /^label_values\((.*),\s*[a-zA-Z_]+\)$/.exec(q || '');
    out.push({ where: `variable ${v.name}`, expr: m ? m[1] : q });
  }
  return out;
}

/** Grafana's variables in an expression, replaced as Grafana would for a 1 s scrape. */
export function grafanaExpand(expr) {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__range', '5m')
    .replaceAll('$job', '.*')
    .replaceAll('$instance', '.*');
}
