// deploy/: every file parses with a real parser and names only settings that
// exist.
// - JSON with JSON.parse, YAML with the npm `yaml` package (YAML 1.2, duplicate
//   keys refused), HCL with @cdktf/hcl2json (HashiCorp's own hcl library
//   compiled to WebAssembly), the Terraform template rendered and parsed;
// - the ECS task definition, service and the Terraform module's container
//   definitions against the ECS API's own shapes (Debian's python3-botocore:
//   botocore/data/ecs/*/service-2.json, RegisterTaskDefinition and
//   CreateService inputs), recursively: names, types, enums, required;
// - the Kubernetes manifests with kubernetes-models' validators (JSON schema
//   from Kubernetes' OpenAPI: types, required fields, enums) and, because
//   those allow unknown fields, field names against the OpenAPI models of
//   @kubernetes/client-node (release 1.36), recursively;
// - the environment they set against `proflabd --help`, and proflabd
//   started with the task definition's environment;
// - every series the Grafana dashboard queries against a running proflabd's
//   /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseHcl } from '@cdktf/hcl2json';
import * as k8sModels from '@kubernetes/client-node/dist/gen/models/all.js';
import { startProflabd, labEnv, stopChecked, request, GOOD_TOKEN } from './helpers.mjs';
import {
  DEPLOY, deployFiles, readJson, readYaml, renderJsonTemplate, templateVars, ecsModel, checkShape,
  proflabdSettings, exportedSeries, dashboardQueries,
} from './deploy-lib.mjs';

const files = deployFiles();
const ecs = ecsModel();
const settings = proflabdSettings();

test('every file under deploy/ is of a kind this test parses', () => {
  assert.ok(files.length >= 10, files.join(' '));
  for (const f of files) assert.match(f, /(\.json|\.ya?ml|\.tf|\.json\.tftpl|README\.md)$/, `${f}: no parser for this kind of file here`);
});

test('JSON and YAML files parse', () => {
  for (const f of files.filter((x) => x.endsWith('.json'))) assert.doesNotThrow(() => readJson(f), f);
  for (const f of files.filter((x) => /\.ya?ml$/.test(x))) assert.ok(readYaml(f).length >= 1, `${f}: no document`);
});

const hcl = {};
before(async () => {
  for (const f of files.filter((x) => x.endsWith('.tf'))) hcl[f] = await parseHcl(f, fs.readFileSync(path.join(DEPLOY, f), 'utf8'));
});

function merged(dir) {
  const out = {};
  for (const [f, doc] of Object.entries(hcl)) {
    if (path.dirname(f) !== dir) continue;
    for (const [block, body] of Object.entries(doc)) {
      out[block] ??= {};
      for (const [k, v] of Object.entries(body)) out[block][k] = k in out[block] && Array.isArray(v) ? out[block][k].concat(v) : v;
    }
  }
  return out;
}

test('Terraform: the module parses (HCL), every var.X is declared, the example passes only its variables', () => {
  const mod = merged('terraform/proflab-lab');
  const declared = Object.keys(mod.variable);
  const used = new Set([...JSON.stringify(mod).matchAll(/\bvar\.([a-z_][a-z0-9_]*)/g)].map((m) => m[1]));
  for (const v of used) assert.ok(declared.includes(v), `var.${v} used but not declared`);
  for (const v of declared) assert.ok(used.has(v), `variable ${v} declared but never used`);
  const required = declared.filter((v) => !('default' in mod.variable[v][0]));
  const ex = merged('terraform/example');
  const call = ex.module.proflab[0];
  assert.equal(call.source, '../proflab-lab');
  for (const k of Object.keys(call)) if (k !== 'source') assert.ok(declared.includes(k), `example passes ${k}, which the module does not declare`);
  for (const v of required) assert.ok(v in call, `example does not pass the required ${v}`);
  // proflab export --ecs reads these outputs with TF_ENV_DIR (docs/export.md)
  for (const o of ['ecs_cluster_name', 'ecs_service_name']) {
    assert.ok(o in mod.output, `module output ${o}`);
    assert.ok(o in ex.output, `example output ${o}`);
  }
});

test('Terraform: ECS Exec on the service, the task role\'s ssmmessages actions, the operators\' ecs:ExecuteCommand', () => {
  const mod = merged('terraform/proflab-lab');
  const svc = mod.resource.aws_ecs_service.this[0];
  assert.equal(svc.enable_execute_command, true);
  const docs = mod.data.aws_iam_policy_document;
  const actions = (doc) => doc[0].statement.flatMap((s) => s.actions || []);
  assert.deepEqual(actions(docs.ecs_exec_task).sort(), ['ssmmessages:CreateControlChannel', 'ssmmessages:CreateDataChannel',
    'ssmmessages:OpenControlChannel', 'ssmmessages:OpenDataChannel']);
  assert.match(mod.resource.aws_iam_role_policy.ecs_exec_task[0].role, /aws_iam_role\.task\.id/, 'on the task role');
  for (const a of ['ecs:ExecuteCommand', 'ecs:DescribeTasks', 'ecs:ListTasks']) assert.ok(actions(docs.operator).includes(a), a);
  assert.deepEqual(actions(docs.read_token), ['secretsmanager:GetSecretValue']);
  assert.match(mod.resource.aws_iam_role_policy.read_token[0].role, /aws_iam_role\.execution\.id/, 'the execution role reads the secret');
  const td = mod.resource.aws_ecs_task_definition.this[0];
  assert.match(td.task_role_arn, /aws_iam_role\.task\.arn/);
  assert.match(td.container_definitions, /templatefile\(/);
});

test('Terraform: the container-definitions template renders to what RegisterTaskDefinition accepts', { skip: !ecs && 'python3-botocore is not installed (scripts/deps.sh test installs it)' }, () => {
  const mod = merged('terraform/proflab-lab');
  const text = fs.readFileSync(path.join(DEPLOY, 'terraform/proflab-lab/container-definitions.json.tftpl'), 'utf8');
  const td = mod.resource.aws_ecs_task_definition.this[0].container_definitions;
  const given = [...td.matchAll(/^\s*([a-z_]+)\s*=/gm)].map((m) => m[1]).sort();
  assert.deepEqual(given, templateVars(text), 'templatefile() passes exactly the template\'s variables');
  const envKeys = [...mod.locals[0].environment.matchAll(/^\s*([A-Z_]+)\s*=/gm)].map((m) => m[1]);
  assert.ok(envKeys.includes('LAB_ENABLE'), envKeys.join(' '));
  for (const k of envKeys) assert.ok(settings.has(k), `${k} is not a proflabd setting (proflabd --help)`);
  const defs = renderJsonTemplate(text, {
    name: 'proflab', image: 'proflab:1', log_group: '/ecs/proflab', region: 'eu-west-1',
    lab_token_secret_arn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:proflab/lab-token-AbCdEf',
    environment: envKeys.sort().map((k) => ({ name: k, value: 'x' })),
  });
  assert.deepEqual(checkShape(ecs, 'ContainerDefinitions', defs), []);
  assert.equal(defs[0].linuxParameters.initProcessEnabled, true);
  assert.deepEqual(defs[0].secrets.map((s) => s.name), ['LAB_TOKEN']);
});

test('ECS: the checker itself refuses a misspelled field, a wrong type and a bad enum', { skip: !ecs && 'python3-botocore is not installed' }, () => {
  const td = readJson('ecs/task-definition.json');
  const bad = structuredClone(td);
  bad.containerDefinitions[0].linuxParameters = { initProcessEnable: true };
  bad.containerDefinitions[0].healthCheck.interval = '10';
  bad.networkMode = 'vpc';
  const p = checkShape(ecs, 'RegisterTaskDefinitionRequest', bad);
  assert.ok(p.some((x) => /initProcessEnable: not a member of LinuxParameters/.test(x)), p.join('\n'));
  assert.ok(p.some((x) => /healthCheck\.interval: expected an integer/.test(x)), p.join('\n'));
  assert.ok(p.some((x) => /networkMode: "vpc" is not one of/.test(x)), p.join('\n'));
});

test('ECS: task definition and service match RegisterTaskDefinition and CreateService, with the lab\'s settings', { skip: !ecs && 'python3-botocore is not installed (scripts/deps.sh test installs it)' }, () => {
  const td = readJson('ecs/task-definition.json');
  assert.deepEqual(checkShape(ecs, 'RegisterTaskDefinitionRequest', td), []);
  const svc = readJson('ecs/service.json');
  assert.deepEqual(checkShape(ecs, 'CreateServiceRequest', svc), []);
  assert.equal(svc.enableExecuteCommand, true);
  const c = td.containerDefinitions[0];
  assert.equal(svc.loadBalancers[0].containerName, c.name);
  assert.equal(svc.loadBalancers[0].containerPort, c.portMappings[0].containerPort);
  assert.equal(c.linuxParameters.initProcessEnabled, true);
  assert.equal(c.readonlyRootFilesystem, false, 'ECS Exec needs a writable root file system');
  assert.equal(c.user, '10001:10001', 'the image\'s user');
  const env = Object.fromEntries(c.environment.map((e) => [e.name, e.value]));
  assert.equal(env.LAB_ENABLE, 'true');
  assert.ok(!('LAB_TOKEN' in env), 'the token is never in the task definition');
  for (const k of Object.keys(env)) assert.ok(settings.has(k), `${k} is not a proflabd setting (proflabd --help)`);
  const tok = c.secrets.find((s) => s.name === 'LAB_TOKEN');
  assert.match(tok.valueFrom, /^arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:/);
  assert.equal(c.healthCheck.command[0], 'CMD-SHELL');
  assert.match(c.healthCheck.command[1], /http:\/\/127\.0\.0\.1:8080\/api\/health/);
  assert.match(td.taskRoleArn, /^arn:aws:iam::\d{12}:role\//, 'ECS Exec needs a task role');
});

test('ECS: proflabd starts with the task definition\'s environment and the lab answers', async () => {
  const c = readJson('ecs/task-definition.json').containerDefinitions[0];
  const env = Object.fromEntries(c.environment.map((e) => [e.name, e.value]));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-ecs-'));
  const srv = await startProflabd({ env: { ...env, PROFLAB_LISTEN: '127.0.0.1:0', LAB_ARTIFACT_DIR: dir, LAB_TOKEN: GOOD_TOKEN } });
  try {
    const r = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
    assert.equal(r.status, 200, r.text);
    const h = await request(srv.base, '/api/health');
    assert.equal(h.status, 200);
  } finally {
    await stopChecked(srv);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Strict field names: the object against client-node's OpenAPI model TYPE, recursively. */
function k8sNames(type, value, where, problems) {
  if (value === null || value === undefined) return problems;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) problems.push(`${where}: expected a list`);
    else value.forEach((v, i) => k8sNames(m[1], v, `${where}[${i}]`, problems));
  } else if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    for (const [k, v] of Object.entries(value)) k8sNames(m[1], v, `${where}.${k}`, problems);
  } else if (k8sModels[type]?.attributeTypeMap) {
    for (const [k, v] of Object.entries(value)) {
      const a = k8sModels[type].attributeTypeMap.find((x) => x.baseName === k);
      if (!a) problems.push(`${where}.${k}: not a field of ${type}`);
      else k8sNames(a.type, v, `${where}.${k}`, problems);
    }
  }
  return problems;
}

const k8sDocs = () => files.filter((f) => f.startsWith('kubernetes/')).flatMap((f) => readYaml(f).map((d) => ({ f, d })));

test('Kubernetes: manifests valid against the Kubernetes schemas and field names against the OpenAPI models', async () => {
  const docs = k8sDocs();
  assert.deepEqual(docs.map(({ d }) => d.kind).sort(), ['Deployment', 'Secret', 'Service']);
  for (const { f, d } of docs) {
    const [group, version] = d.apiVersion.includes('/') ? d.apiVersion.split('/') : [null, d.apiVersion];
    const mod = await import(`kubernetes-models/${group ? `${group}/` : ''}${version}/${d.kind}`);
    assert.doesNotThrow(() => new mod[d.kind](d).validate(), `${f}: ${d.kind}`);
    const type = `V1${d.kind}`;
    assert.ok(k8sModels[type], type);
    assert.deepEqual(k8sNames(type, d, `${f}:${d.kind}`, []), []);
  }
  // the checker itself: a misspelled probe field is caught
  const bad = structuredClone(docs.find(({ d }) => d.kind === 'Deployment').d);
  bad.spec.template.spec.containers[0].livenessProbe.httpGet.pth = '/x';
  assert.deepEqual(k8sNames('V1Deployment', bad, 'bad', []), ['bad.spec.template.spec.containers[0].livenessProbe.httpGet.pth: not a field of V1HTTPGetAction']);
});

test('Kubernetes: non-root, probes on /api/health, the Secret, the Service and the scrape annotations fit together', () => {
  const docs = k8sDocs().map(({ d }) => d);
  const dep = docs.find((d) => d.kind === 'Deployment');
  const svc = docs.find((d) => d.kind === 'Service');
  const sec = docs.find((d) => d.kind === 'Secret');
  const pod = dep.spec.template;
  const c = pod.spec.containers[0];
  assert.equal(pod.spec.securityContext.runAsNonRoot, true);
  assert.equal(pod.spec.securityContext.runAsUser, 10001, 'the image\'s uid');
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  const port = (p) => (typeof p === 'number' ? p : c.ports.find((x) => x.name === p)?.containerPort);
  for (const probe of [c.livenessProbe, c.readinessProbe]) {
    assert.equal(probe.httpGet.path, '/api/health');
    assert.equal(port(probe.httpGet.port), 8080);
  }
  const env = Object.fromEntries(c.env.map((e) => [e.name, e]));
  assert.equal(env.LAB_ENABLE.value, 'true');
  for (const k of Object.keys(env)) assert.ok(settings.has(k), `${k} is not a proflabd setting (proflabd --help)`);
  const ref = env.LAB_TOKEN.valueFrom.secretKeyRef;
  assert.equal(ref.name, sec.metadata.name);
  assert.ok(ref.key in sec.stringData);
  assert.ok(sec.stringData[ref.key].length >= 16, 'a token proflabd accepts (16+ characters)');
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(pod.metadata.labels[k], v);
  assert.deepEqual(dep.spec.selector.matchLabels, svc.spec.selector);
  assert.equal(port(svc.spec.ports[0].targetPort), 8080);
  const ann = pod.metadata.annotations;
  assert.equal(ann['prometheus.io/scrape'], 'true');
  assert.equal(Number(ann['prometheus.io/port']), 8080);
  assert.equal(ann['prometheus.io/path'], '/metrics');
  for (const m of c.volumeMounts) assert.ok(pod.spec.volumes.some((v) => v.name === m.name), m.name);
  assert.ok(c.volumeMounts.some((m) => m.mountPath === env.LAB_ARTIFACT_DIR.value), 'artifacts on a writable volume');
});

test('Grafana: every series the dashboard queries is in a running proflabd\'s /metrics', async () => {
  const dash = readJson('grafana/proflab-dashboard.json');
  const queries = dashboardQueries(dash);
  assert.ok(queries.length >= 10, `${queries.length} queries`);
  const srv = await startProflabd({ env: labEnv() });
  let text;
  try {
    await fetch(`${srv.base}/api/health`);
    await (await fetch(`${srv.base}/metrics`)).text(); // counted answers show from the next scrape on
    const r = await fetch(`${srv.base}/metrics`);
    assert.equal(r.status, 200);
    text = await r.text();
  } finally {
    await stopChecked(srv);
  }
  const exported = exportedSeries(text);
  const used = new Set();
  for (const { where, expr } of queries) {
    const names = [...expr.matchAll(/\bproflab_[a-z0-9_]+/g)].map((m) => m[0]);
    assert.ok(names.length >= 1, `${where}: names no proflab series: ${expr}`);
    for (const n of names) {
      assert.ok(exported.has(n), `${where}: ${n} is not exported by /metrics`);
      used.add(n);
    }
  }
  for (const key of ['proflab_event_loop_lag_seconds_bucket', 'proflab_heap_live_bytes', 'proflab_process_resident_memory_bytes', 'proflab_lab_leak_bytes']) {
    assert.ok(used.has(key), `the dashboard shows ${key}`);
  }
});
