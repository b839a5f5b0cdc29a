/**
 * The Kubernetes manifests (k8s/) are valid and consistent: every YAML document parses; every object
 * (as written, and as each overlay renders it: base + generated ConfigMap + JSON patches) validates
 * against the Kubernetes API schemas (kubernetes-models); the Service selects the coordinator pod and
 * its port is the one the config binds and the workers dial; the workers are an Indexed Job of GPU
 * pods with --backend gpu (the CUDA image), or under overlays/webgpu/ with --backend webgpu, the webgpu
 * image and the driver's graphics capability (Vulkan); the coordinator resumes, each overlay in a run
 * dir of its own; the ConfigMap's config validates against configs/schema.json, and the paper
 * overlay's is configs/paper.json; CURVE keys come from the Secret the README's command makes, and
 * NetworkPolicies let only worker pods reach the coordinator's and the workers' ports. Where kubectl is
 * installed, its kustomize renders the overlays exactly as this test does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolume } from 'kubernetes-models/v1/PersistentVolume';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { loadConfig } from '../../shared/config/load.js';
import { repoRoot } from '../../shared/paths.js';
import { tempDir } from '../helpers/coordinator.js';

type Obj = Record<string, any>;
const k8sDir = join(repoRoot, 'k8s');
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap, 'v1/PersistentVolume': PersistentVolume, 'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Pod': Pod, 'v1/Service': Service, 'batch/v1/Job': Job, 'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(f) ? [p] : [];
  });
}

function parseFile(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  assert.ok(Array.isArray(docs), `${file}: not a YAML stream`);
  for (const d of docs) assert.deepEqual(d.errors.map(String), [], `${relative(repoRoot, file)} parses`);
  return docs.map((d) => d.toJS()).filter((d) => d !== null);
}

function validate(o: Obj, where: string): void {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  assert.ok(Model, `${where}: no model for ${o.apiVersion} ${o.kind} (add it to MODELS)`);
  assert.doesNotThrow(() => new Model(o as never).validate(), `${where}: ${o.kind} ${o.metadata?.name} validates`);
}

const isKustomization = (file: string) => /(^|\/)kustomization\.ya?ml$/.test(file);

/** RFC 6902 add / replace / remove / test on a plain object (the subset kustomize patches use here). */
function applyJsonPatch(target: Obj, ops: Obj[], where: string): void {
  for (const op of ops) {
    assert.ok(['add', 'replace', 'remove', 'test'].includes(op.op) && typeof op.path === 'string', `${where}: bad op ${JSON.stringify(op)}`);
    const keys = op.path.split('/').slice(1).map((k: string) => k.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = keys.pop()!;
    let node: Record<string | number, unknown> = target;
    for (const k of keys) {
      assert.ok(node[k] !== undefined && typeof node[k] === 'object', `${where}: ${op.path} does not exist`);
      node = node[k] as Obj;
    }
    const index = Array.isArray(node) ? (last === '-' ? node.length : Number(last)) : last;
    if (op.op !== 'add' || !Array.isArray(node)) assert.ok(index in node, `${where}: ${op.path} does not exist`);
    if (op.op === 'test') assert.deepEqual(node[index], op.value, `${where}: test ${op.path}`);
    else if (op.op === 'remove') Array.isArray(node) ? node.splice(index as number, 1) : delete node[index];
    else if (op.op === 'add' && Array.isArray(node)) node.splice(index as number, 0, structuredClone(op.value));
    else node[index] = structuredClone(op.value);
  }
}

/**
 * What `kubectl kustomize DIR` outputs, for the features these manifests use (checked against kubectl
 * below). A Component (kind Component, listed under `components:`) is rendered into the objects its
 * parent has accumulated so far, after the parent's resources and before its generators and patches,
 * as kustomize does.
 */
function render(dir: string, into?: Obj[]): Obj[] {
  const k = parseFile(join(dir, 'kustomization.yaml'))[0] as Obj;
  const known = ['apiVersion', 'kind', 'resources', 'components', 'configMapGenerator', 'generatorOptions', 'patches', 'images', 'namespace'];
  assert.deepEqual(Object.keys(k).filter((x) => !known.includes(x)), [], `${dir}: only ${known.join(', ')} are supported here`);
  assert.equal(k.kind === 'Component', into !== undefined, `${relative(repoRoot, dir)}: a Component is used through components:, a Kustomization through resources:`);
  const out: Obj[] = into ?? [];
  for (const r of k.resources ?? []) {
    const p = join(dir, r);
    assert.ok(existsSync(p), `${relative(repoRoot, dir)}: resource ${r} exists`);
    out.push(...(statSync(p).isDirectory() ? render(p) : (parseFile(p) as Obj[])));
  }
  for (const c of k.components ?? []) {
    assert.ok(existsSync(join(dir, c, 'kustomization.yaml')), `${relative(repoRoot, dir)}: component ${c} exists`);
    render(join(dir, c), out);
  }
  for (const g of k.configMapGenerator ?? []) {
    assert.equal(k.generatorOptions?.disableNameSuffixHash, true, 'generated names are fixed (the pods refer to them)');
    const data: Record<string, string> = {};
    for (const f of g.files) data[f] = readFileSync(join(dir, f), 'utf8');
    out.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data });
  }
  for (const p of k.patches ?? []) {
    const ops = parseFile(join(dir, p.path))[0] as Obj[];
    const hits = out.filter((o) => o.kind === p.target.kind && o.metadata.name === p.target.name);
    assert.equal(hits.length, 1, `${relative(repoRoot, dir)}: patch ${p.path} targets exactly one object`);
    applyJsonPatch(hits[0], ops, `${relative(repoRoot, dir)}/${p.path}`);
  }
  for (const img of k.images ?? []) { // name[:tag] → newName[:newTag] or newName@digest
    for (const c of out.flatMap((o) => (o.kind === 'Pod' ? o.spec : o.spec?.template?.spec)?.containers ?? [])) {
      const [, name, tag] = /^(.*?)(?::([^:/]+))?$/.exec(c.image)!;
      if (name !== img.name) continue;
      const newTag = img.newTag ?? tag;
      c.image = `${img.newName ?? name}${img.digest ? `@${img.digest}` : newTag ? `:${newTag}` : ''}`;
    }
  }
  if (k.namespace) for (const o of out) if (o.kind !== 'PersistentVolume') o.metadata.namespace = k.namespace;
  return out;
}

const overlaysDir = join(k8sDir, 'overlays');
/** Every Kustomization under overlays/ (webgpu/ nests its smoke variant), not the Components. */
function findOverlays(dir: string): { name: string; dir: string }[] {
  const file = join(dir, 'kustomization.yaml');
  const here = existsSync(file) && (parseFile(file)[0] as Obj).kind !== 'Component' ? [{ name: relative(overlaysDir, dir), dir }] : [];
  const below = readdirSync(dir).map((f) => join(dir, f)).filter((p) => statSync(p).isDirectory()).flatMap(findOverlays);
  return [...here, ...below];
}
const overlays = findOverlays(overlaysDir);
/** Overlays whose workers compute on webgpu (Vulkan) rather than tfjs-node-gpu (CUDA). */
const isWebGpuOverlay = (name: string) => name === 'webgpu' || name.startsWith('webgpu/');
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind} ${name} is there`);
  return o;
};
const subset = (sel: Obj, labels: Obj) => Object.entries(sel).every(([key, v]) => labels?.[key] === v);
/** A container's environment with $(VAR) references expanded (fieldRef values become `fieldRefs`). */
function envOf(c: Obj, fieldRefs = '0'): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) env[e.name] = e.valueFrom ? fieldRefs : String(e.value).replace(/\$\((\w+)\)/g, (m, v: string) => env[v] ?? m);
  return env;
}
/** The coordinator's run dir (--run-dir with its $(VARS) expanded). */
function runDirOf(objs: Obj[]): string {
  const cc = find(objs, 'Job', 'coordinator').spec.template.spec.containers[0];
  const args: string[] = [...(cc.command ?? []), ...cc.args];
  const env = envOf(cc);
  return args[args.indexOf('--run-dir') + 1].replace(/\$\((\w+)\)/g, (_m, v: string) => env[v]);
}

test('every YAML document under k8s/ parses, and every Kubernetes object in it validates', () => {
  const files = yamlFiles(k8sDir);
  assert.ok(files.length >= 8, `found ${files.length} files`);
  const patchFiles = new Set<string>();
  for (const f of files.filter(isKustomization)) {
    for (const p of (parseFile(f)[0] as Obj).patches ?? []) patchFiles.add(join(dirname(f), p.path));
  }
  assert.ok(patchFiles.size >= 2, 'the overlays have patches');
  for (const f of files) {
    const docs = parseFile(f) as Obj[];
    assert.ok(docs.length > 0, `${relative(repoRoot, f)} is not empty`);
    if (isKustomization(f)) continue;
    if (patchFiles.has(f)) {
      assert.ok(Array.isArray(docs[0]) && docs[0].length > 0, `${relative(repoRoot, f)} is a list of JSON patch ops`);
      continue; // validated below, applied to their targets
    }
    for (const o of docs) validate(o, relative(repoRoot, f));
  }
});

for (const { name, dir } of overlays) {
  test(`overlay ${name}: renders to valid, consistent objects`, () => {
    const objs = render(dir);
    for (const o of objs) validate(o, `overlays/${name}`);
    const service = find(objs, 'Service', 'coordinator');
    const coord = find(objs, 'Job', 'coordinator');
    const workers = find(objs, 'Job', 'worker');
    for (const job of [coord, workers]) {
      if (job.spec.selector) assert.ok(job.spec.manualSelector && subset(job.spec.selector.matchLabels, job.spec.template.metadata.labels));
    }

    // the Service selects the coordinator's pod and only it; its port is the coordinator's
    assert.equal(service.spec.clusterIP, 'None', 'headless');
    assert.ok(subset(service.spec.selector, coord.spec.template.metadata.labels), 'Service selector matches the coordinator pod');
    assert.ok(!subset(service.spec.selector, workers.spec.template.metadata.labels), 'Service selector does not match workers');
    const cc = coord.spec.template.spec.containers[0];
    const svcPort = service.spec.ports[0];
    const cPort = cc.ports.find((p: Obj) => p.name === svcPort.targetPort || p.containerPort === svcPort.targetPort);
    assert.ok(cPort, 'the Service targets a port of the coordinator container');

    // the config: in the ConfigMap the coordinator mounts, valid, binding that port
    const cmVolume = coord.spec.template.spec.volumes.find((v: Obj) => v.configMap);
    const cm = find(objs, 'ConfigMap', cmVolume.configMap.name);
    const mount = cc.volumeMounts.find((m: Obj) => m.name === cmVolume.name);
    const args: string[] = [...(cc.command ?? []), ...cc.args];
    const configPath = args[args.indexOf('--config') + 1];
    assert.equal(dirname(configPath), mount.mountPath, '--config is in the ConfigMap mount');
    const file = join(tempDir('k8s-config'), 'config.json');
    writeFileSync(file, cm.data[configPath.slice(mount.mountPath.length + 1)]);
    const config = loadConfig(file); // throws ConfigError listing every problem
    const bind = /^tcp:\/\/(0\.0\.0\.0|\*):(\d+)$/.exec(config.workers.bind);
    assert.ok(bind, `workers.bind listens on all interfaces: ${config.workers.bind}`);
    assert.equal(Number(bind[2]), cPort.containerPort, 'workers.bind port = containerPort');
    assert.equal(svcPort.port, cPort.containerPort, 'Service port = containerPort');

    // the coordinator resumes; its run dir is on the runs volume; the dataset is read-only
    assert.ok(args.includes('--resume'), 'coordinator start --resume');
    const runDir = runDirOf(objs);
    const volumes = Object.fromEntries(coord.spec.template.spec.volumes.map((v: Obj) => [v.name, v]));
    const runsMount = cc.volumeMounts.find((m: Obj) => runDir.startsWith(`${m.mountPath}/`));
    assert.ok(runsMount && volumes[runsMount.name].persistentVolumeClaim, `run dir ${runDir} is on a persistent volume`);
    const expectedRunDir: Record<string, string> = { paper: '/runs/paper', smoke: '/runs/smoke', webgpu: '/runs/paper-webgpu', 'webgpu/smoke': '/runs/smoke-webgpu' };
    if (expectedRunDir[name]) assert.equal(runDir, expectedRunDir[name], 'each overlay has its own run dir');
    for (const m of cc.volumeMounts.filter((x: Obj) => x.name === 'dataset')) {
      assert.equal(m.readOnly, true, 'dataset mounted read-only');
      const pvc = volumes.dataset.persistentVolumeClaim;
      if (pvc) {
        assert.equal(pvc.readOnly, true);
        assert.deepEqual(find(objs, 'PersistentVolumeClaim', pvc.claimName).spec.accessModes, ['ReadOnlyMany']);
      }
    }
    for (const job of [coord, workers]) {
      for (const v of job.spec.template.spec.volumes ?? []) if (v.persistentVolumeClaim) find(objs, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName);
      assert.ok(job.spec.template.spec.terminationGracePeriodSeconds > 0, 'grace period set');
    }

    // the workers: an Indexed Job of GPU pods forced onto the GPU (CUDA, or Vulkan under webgpu/), dialling the Service
    assert.equal(workers.spec.completionMode, 'Indexed');
    assert.equal(workers.spec.parallelism, workers.spec.completions, 'parallelism = completions');
    assert.ok(workers.spec.completions >= config.workers.minWorkers, 'enough workers for workers.minWorkers');
    const wc = workers.spec.template.spec.containers[0];
    assert.equal(String(wc.resources.limits['nvidia.com/gpu']), '1', 'one GPU per worker');
    const wargs: string[] = wc.args;
    const wenv = envOf(wc);
    const imageName = String(wc.image).replace(/[:@].*$/, '');
    if (isWebGpuOverlay(name)) {
      assert.equal(wargs[wargs.indexOf('--backend') + 1], 'webgpu', '--backend webgpu');
      assert.equal(imageName, 'multires-face/worker-webgpu', 'the webgpu image (docker/worker-webgpu.Dockerfile)');
      // the NVIDIA container toolkit mounts the Vulkan ICD only with the graphics capability
      const caps = (wenv.NVIDIA_DRIVER_CAPABILITIES ?? '').split(',').map((s) => s.trim());
      for (const cap of ['compute', 'utility', 'graphics']) assert.ok(caps.includes(cap) || caps.includes('all'), `NVIDIA_DRIVER_CAPABILITIES has ${cap}: ${wenv.NVIDIA_DRIVER_CAPABILITIES}`);
    } else {
      assert.equal(wargs[wargs.indexOf('--backend') + 1], 'gpu', '--backend gpu');
      assert.equal(imageName, 'multires-face/worker', 'the CUDA image (docker/worker.Dockerfile or worker-cuda12.Dockerfile)');
    }
    assert.equal(wenv.WORKER_BACKEND, undefined, 'no WORKER_BACKEND to contradict --backend');
    assert.equal(wenv.WORKER_COORDINATOR, `tcp://${service.metadata.name}:${svcPort.port}`, 'workers dial the Service');
    assert.equal(wenv.WORKER_NAME, 'worker-0', 'named after the completion index');
    assert.equal(wenv.WORKER_REJOIN, 'true');
    assert.ok(Number(wenv.WORKER_STOP_TIMEOUT) + 5 <= workers.spec.template.spec.terminationGracePeriodSeconds, 'the goodbye fits in the grace period');
    assert.equal(workers.spec.template.spec.enableServiceLinks, false, 'no service env vars (the worker refuses unknown WORKER_*)');
  });
}

test('every overlay has a run dir of its own', () => {
  const dirs = overlays.map(({ name, dir }) => [name, runDirOf(render(dir))] as const);
  assert.equal(new Set(dirs.map(([, d]) => d)).size, dirs.length, `run dirs: ${JSON.stringify(dirs)}`);
});

test('the webgpu overlays are their CUDA counterparts but for the workers\' image, backend and capabilities, and the run name', () => {
  const strip = (objs: Obj[]) => {
    const copy = structuredClone(objs);
    const wc = find(copy, 'Job', 'worker').spec.template.spec.containers[0];
    delete wc.image;
    delete wc.args;
    wc.env = wc.env.filter((e: Obj) => e.name !== 'NVIDIA_DRIVER_CAPABILITIES');
    find(copy, 'Job', 'coordinator').spec.template.spec.containers[0].env[0].value = 'RUN';
    return copy;
  };
  for (const [webgpu, cuda] of [['webgpu', 'paper'], ['webgpu/smoke', 'smoke']]) {
    assert.deepEqual(strip(render(join(overlaysDir, webgpu))), strip(render(join(overlaysDir, cuda))), `${webgpu} vs ${cuda}`);
  }
});

test('the worker CLI accepts the environment the worker Job gives it, in every overlay', () => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WORKER_')));
  for (const { name, dir } of overlays) {
    const workers = find(render(dir), 'Job', 'worker');
    const env = envOf(workers.spec.template.spec.containers[0]);
    // --check-backend with the cpu backend: parses every option (strict: an unknown WORKER_* fails), loads fast
    const r = spawnSync(process.execPath, [join(repoRoot, 'dist', 'worker', 'cli.js'), '--check-backend', '--backend', 'cpu'], {
      env: { ...clean, ...env }, encoding: 'utf8',
    });
    assert.equal(r.status, 0, `overlay ${name}: ${r.stderr}`);
  }
});

test('the paper overlay trains with configs/paper.json; the example PV fits the dataset claim', () => {
  const paper = JSON.parse(readFileSync(join(repoRoot, 'configs', 'paper.json'), 'utf8')) as Obj;
  const overlay = JSON.parse(readFileSync(join(overlaysDir, 'paper', 'config.json'), 'utf8')) as Obj;
  const leaves = (o: Obj, at = ''): [string, unknown][] => Object.entries(o).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) ? leaves(v, `${at}${k}.`) : [[`${at}${k}`, v] as [string, unknown]]);
  const mine = new Map(leaves(overlay));
  for (const [key, value] of leaves(paper)) {
    if (key === 'workers.bind') continue; // tcp://0.0.0.0:5555 in the pod: same port
    assert.deepEqual(mine.get(key), value, `${key} as in configs/paper.json`);
  }
  const pv = parseFile(join(k8sDir, 'examples', 'dataset-pv.yaml'))[0] as Obj;
  const claim = (parseFile(join(k8sDir, 'base', 'storage.yaml')) as Obj[]).find((o) => o.metadata.name === 'dataset')!;
  assert.ok(subset(claim.spec.selector.matchLabels, pv.metadata.labels), 'the claim selects the example PV');
  assert.equal(pv.spec.storageClassName, claim.spec.storageClassName);
  assert.ok(pv.spec.accessModes.includes('ReadOnlyMany'));
});

test('every overlay: keys from the Secret of k8s/README.md at the paths the config names; only worker pods reach the two ports', () => {
  const readme = readFileSync(join(k8sDir, 'README.md'), 'utf8');
  const made = /kubectl -n \S+ create secret generic (\S+)((?: --from-file=\S+)+)/.exec(readme);
  assert.ok(made, 'k8s/README.md shows the kubectl command that makes the Secret');
  const files = [...made[2].matchAll(/--from-file=(?:[^=\s]+=)?\S*?([^/\s]+)(?=\s|$)/g)].map((m) => m[1]);
  for (const { name, dir } of overlays) {
    const objs = render(dir);
    const cm = objs.find((o) => o.kind === 'ConfigMap')!;
    const config = JSON.parse(cm.data['config.json']) as { security: { secretKey: string; allowedWorkers: string[] } };
    const mounted = (job: Obj): Map<string, string> => { // path in the container → key of the Secret
      const spec = job.spec.template.spec;
      const out = new Map<string, string>();
      for (const v of spec.volumes.filter((x: Obj) => x.secret)) {
        assert.equal(v.secret.secretName, made[1], `overlay ${name}: the Secret the README makes`);
        assert.equal(v.secret.defaultMode & 0o007, 0, 'key files give other users nothing');
        const m = spec.containers[0].volumeMounts.find((x: Obj) => x.name === v.name);
        for (const it of v.secret.items) out.set(`${m.mountPath}/${it.path}`, it.key);
      }
      assert.equal(spec.securityContext.fsGroup, spec.securityContext.runAsGroup, 'the key files belong to the container\'s group');
      return out;
    };
    const c = mounted(find(objs, 'Job', 'coordinator'));
    for (const p of [config.security.secretKey, ...config.security.allowedWorkers]) assert.ok(files.includes(c.get(p) ?? ''), `overlay ${name}: ${p} comes from the Secret`);
    const wjob = find(objs, 'Job', 'worker');
    const w = mounted(wjob);
    const env = envOf(wjob.spec.template.spec.containers[0]);
    for (const p of [env.WORKER_KEY, env.WORKER_COORDINATOR_KEY]) assert.ok(files.includes(w.get(p) ?? ''), `overlay ${name}: worker key ${p} comes from the Secret`);
    const workerLabels = wjob.spec.template.metadata.labels;
    const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
    const data = Number(/:(\d+)$/.exec(JSON.parse(cm.data['config.json']).workers.dataBind)![1]);
    for (const [job, port] of [[find(objs, 'Job', 'coordinator'), 5555], [wjob, data]] as const) {
      const p = policies.find((x) => subset(x.spec.podSelector.matchLabels, job.spec.template.metadata.labels));
      assert.ok(p, `overlay ${name}: a NetworkPolicy selects the ${job.metadata.name} pods`);
      assert.deepEqual(p.spec.policyTypes, ['Ingress']);
      assert.ok(p.spec.ingress.every((r: Obj) => r.from.every((f: Obj) => f.podSelector && subset(f.podSelector.matchLabels, workerLabels) && !f.ipBlock && !f.namespaceSelector)), 'from worker pods only');
      assert.deepEqual(p.spec.ingress.flatMap((r: Obj) => r.ports.map((x: Obj) => x.port)), [port]);
    }
  }
});

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
test('kubectl kustomize renders each overlay as this test does', { skip: !kubectl && 'kubectl is not installed' }, () => {
  const key = (o: Obj) => `${o.kind}/${o.metadata.name}`;
  for (const { name, dir } of overlays) {
    const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const theirs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).sort((a, b) => key(a).localeCompare(key(b)));
    const ours = render(dir).sort((a, b) => key(a).localeCompare(key(b)));
    assert.deepEqual(ours, theirs, `overlay ${name}`);
  }
});
