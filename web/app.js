// sevd's operator view: a client of the public interface only. Every fact comes from QMP
// over the WebSocket text mode (one JSON message per frame), the token travelling as the
// `token.<t>` subprotocol, exactly as any other client would use it.
const token = new URLSearchParams(location.search).get('token');
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
const $ = (sel) => document.querySelector(sel);
const POLICY_FLAGS = [[0x1, 'NODBG'], [0x2, 'NOKS'], [0x4, 'ES'], [0x8, 'NOSEND'], [0x10, 'DOMAIN'], [0x20, 'SEV']];
const COLOURS = { private: '#7b2cbf', shared: '#2a9d8f', vmsa: '#e76f51', untouched: '#e5e5e5' };

/** A QMP connection: greeting, negotiation, commands matched by id, events to a callback. */
class Qmp {
  constructor(path, onEvent = () => {}) {
    this.path = path;
    this.onEvent = onEvent;
    this.pending = new Map();
    this.seq = 0;
  }

  open() {
    return new Promise((resolve, reject) => {
      // Browsers need the server to pick one offered subprotocol: 'qmp' (text mode) beside the token.
      this.ws = new WebSocket(wsBase + this.path, token ? ['qmp', `token.${token}`] : []);
      let greeted = false;
      this.ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (!greeted && (msg.QMP || this.path.startsWith('/qga/'))) {
          greeted = true;
          if (msg.QMP) this.execute('qmp_capabilities').then(() => resolve(this), reject);
          return;
        }
        if (msg.event) return this.onEvent(msg);
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new Error(msg.error.desc));
        else p.resolve(msg.return);
      };
      this.ws.onopen = () => {
        // The guest agent sends no greeting.
        if (this.path.startsWith('/qga/')) {
          greeted = true;
          resolve(this);
        }
      };
      this.ws.onerror = () => reject(new Error(`cannot connect to ${this.path}`));
      this.ws.onclose = () => {
        for (const p of this.pending.values()) p.reject(new Error('connection closed'));
        this.pending.clear();
        this.closed = true;
      };
    });
  }

  execute(command, args) {
    const id = `ui-${++this.seq}`;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }));
    });
  }

  close() {
    this.ws?.close();
  }
}

const state = {
  control: null,
  guests: new Map(), // name → { qmp, info, sev, cpus, measure, migrate }
  selected: null,
  view: null, // { gpa, size } of the memory picture, null = whole guest
  asids: new Map(),
};

function logEvent(source, msg) {
  const li = document.createElement('li');
  const t = new Date(msg.timestamp.seconds * 1000 + msg.timestamp.microseconds / 1000).toISOString().slice(11, 23);
  li.textContent = `${t} ${source} ${msg.event}${msg.data ? ' ' + JSON.stringify(msg.data) : ''}`;
  li.dataset.event = msg.event;
  $('#events').prepend(li);
}

const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
const b64hex = (b64) => hex(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));

async function refreshHost() {
  const c = state.control;
  const [status, caps, version, asids, snp] = await Promise.all([
    c.execute('sev-platform-status'), c.execute('query-sev-capabilities'), c.execute('query-version'), c.execute('query-asids'),
    c.execute('sev-snp-platform-status').catch(() => null), // no SNP before milan
  ]);
  const tcb = (t) => `bl ${t.bootloader} tee ${t.tee} snp ${t.snp} ucode ${t.microcode}${t.fmc !== undefined ? ` fmc ${t.fmc}` : ''}`;
  state.asids = new Map(asids['in-use'].map((a) => [a.name, a.asid]));
  const facts = [
    ['API version', `${status['api-major']}.${status['api-minor']} build ${status['build-id']}`],
    ['platform', `${status.state}, owner ${status.owner}`],
    ['SEV-ES', status.es ? 'yes' : 'no'],
    ['SNP', snp ? `${snp.state}, RMP ${snp['rmp-initialized'] ? 'initialised' : 'off'}${snp['mask-chip-id'] ? ', chip id masked' : ''}` : 'not on this generation'],
    ['TCB', snp ? `current ${tcb(snp['current-tcb'])}; reported ${tcb(snp['reported-tcb'])}; committed ${tcb(snp['committed-tcb'])}` : '—'],
    ['chip id', b64hex(caps['cpu0-id']).slice(0, 32) + '…'],
    ['C-bit', String(caps.cbitpos)],
    ['ASIDs', `${asids['in-use'].length} in use, ${asids.free} free (1–${asids['max-asid']}; SEV from ${asids['min-sev-asid']})`],
    ['firmware contexts', String(status['guest-count'])],
    ['QEMU version', `${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro} (${version.package})`],
  ];
  const dl = $('#host-facts');
  dl.replaceChildren(...facts.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dd.dataset.fact = k;
    return [dt, dd];
  }));
}

async function guestDetails(name) {
  let g = state.guests.get(name);
  if (!g) {
    g = { qmp: new Qmp(`/qmp/${encodeURIComponent(name)}`, (m) => logEvent(name, m)) };
    state.guests.set(name, g);
    g.ready = g.qmp.open();
  }
  await g.ready;
  const [sev, cpus, migrate] = await Promise.all([g.qmp.execute('query-sev'), g.qmp.execute('query-cpus-fast'), g.qmp.execute('query-migrate')]);
  g.sev = sev;
  g.cpus = cpus.length;
  g.migrate = migrate;
  if (sev.enabled && g.measure === undefined) g.measure = await g.qmp.execute('query-sev-launch-measure').then((r) => r.data, () => undefined);
  return g;
}

function cell(text, cls) {
  const td = document.createElement('td');
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function policyFlags(policy) {
  const span = document.createElement('span');
  for (const [bit, name] of POLICY_FLAGS) {
    if (!(policy & bit)) continue;
    const f = document.createElement('span');
    f.className = 'flag';
    f.textContent = name;
    span.append(f);
  }
  const api = `${(policy >>> 16) & 0xff}.${(policy >>> 24) & 0xff}`;
  if (api !== '0.0') span.append(` API≥${api}`);
  return span.childNodes.length ? span : '—';
}

function migrationCell(m) {
  if (!m || !m.status) return '—';
  const wrap = document.createElement('span');
  const bar = document.createElement('progress');
  bar.max = 100;
  const total = m.ram?.total || 0;
  bar.value = m.status === 'completed' ? 100 : total ? Math.min(99, Math.round((100 * (m.ram.transferred || 0)) / total)) : 0;
  bar.dataset.status = m.status;
  wrap.append(bar, ` ${m.status}`);
  return wrap;
}

function actionButtons(name) {
  const span = document.createElement('span');
  for (const [action, label] of [['stop', 'stop'], ['cont', 'cont'], ['system_reset', 'reset'], ['guest-del', 'del']]) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.dataset.action = action;
    b.onclick = async (e) => {
      e.stopPropagation();
      try {
        if (action === 'guest-del') await state.control.execute('guest-del', { name });
        else await state.guests.get(name).qmp.execute(action);
      } catch (err) {
        alert(`${label}: ${err.message}`);
      }
      await refreshGuests();
    };
    span.append(b);
  }
  return span;
}

async function refreshGuests() {
  const list = await state.control.execute('query-guests');
  for (const name of [...state.guests.keys()]) {
    if (!list.some((g) => g.name === name)) {
      state.guests.get(name).qmp.close();
      state.guests.delete(name);
    }
  }
  const rows = await Promise.all(list.map(async (info) => {
    const g = await guestDetails(info.name).catch(() => null);
    const tr = document.createElement('tr');
    tr.dataset.guest = info.name;
    if (info.name === state.selected) tr.className = 'selected';
    const sev = g?.sev;
    const kind = !sev?.enabled ? 'none' : sev['sev-type'] === 'sev-snp' ? 'SEV-SNP' : sev.policy & 0x4 ? 'SEV-ES' : 'SEV';
    tr.append(
      cell(info.name),
      cell(info.status, 'run-state'),
      cell(kind, 'sev-kind'),
      cell(info['sev-state'] ?? '—', 'sev-state'),
      cell(sev?.enabled ? policyFlags(sev.policy ?? 0) : '—'),
      cell(sev?.enabled ? String(sev.handle) : '—'),
      cell(String(state.asids.get(info.name) ?? '—')),
      cell(String(g?.cpus ?? '—')),
      cell(g?.measure ? b64hex(g.measure).slice(0, 16) + '…' : '—', 'mono'),
      cell(migrationCell(g?.migrate), 'migration'),
      cell(actionButtons(info.name)),
    );
    tr.onclick = () => selectGuest(info.name);
    return tr;
  }));
  $('#guests tbody').replaceChildren(...rows);
}

function selectGuest(name) {
  state.selected = name;
  state.view = null;
  $('#mem-guest').textContent = name;
  for (const tr of document.querySelectorAll('#guests tbody tr')) tr.classList.toggle('selected', tr.dataset.guest === name);
  drawMemory();
}

/** The memory picture: runs drawn side by side, widths by page count (unmapped gaps left out). */
async function drawMemory() {
  const name = state.selected;
  if (!name) return;
  const args = { name, ...(state.view ? { gpa: state.view.gpa, size: state.view.size } : {}) };
  const runs = await state.control.execute('query-guest-memory', args);
  const canvas = $('#memory');
  const ctx = canvas.getContext('2d');
  const total = runs.reduce((a, r) => a + r.pages, 0) || 1;
  const layout = [];
  let x = 0;
  // Untouched is the background; every other run is drawn over it at least one pixel wide,
  // so a single private page in a large guest stays visible.
  ctx.fillStyle = COLOURS.untouched;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (const r of runs) {
    const w = (r.pages / total) * canvas.width;
    if (r.kind !== 'untouched') {
      ctx.fillStyle = COLOURS[r.kind];
      ctx.fillRect(Math.floor(x), 0, Math.max(1, Math.ceil(w)), canvas.height);
    }
    layout.push({ x0: x, x1: x + w, ...r });
    x += w;
  }
  state.layout = layout;
  state.layoutGuest = name;
  const first = runs[0]?.gpa ?? 0;
  const last = runs.length ? runs[runs.length - 1].gpa + runs[runs.length - 1].pages * 4096 : 0;
  $('#mem-window').textContent = `0x${first.toString(16)}–0x${last.toString(16)}, ${total} pages`;
}

$('#memory').addEventListener('click', (e) => {
  const canvas = e.currentTarget;
  const x = ((e.offsetX ?? 0) / canvas.clientWidth) * canvas.width;
  const run = state.layout?.find((r) => x >= r.x0 && x < r.x1);
  if (!run) return;
  // Zoom in on an eighth of the clicked run, centred where the click fell (at least one page).
  const at = run.gpa + Math.floor(((x - run.x0) / Math.max(1e-9, run.x1 - run.x0)) * run.pages) * 4096;
  const size = Math.max(4096, Math.floor((run.pages * 4096) / 8 / 4096) * 4096);
  state.view = { gpa: Math.max(run.gpa, at - size / 2 - ((at - size / 2) % 4096)), size };
  $('#page-form').elements.gpa.value = '0x' + at.toString(16);
  drawMemory();
});
$('#zoom-reset').onclick = () => {
  state.view = null;
  drawMemory();
};

/** The host's view (xp through the guest monitor) beside the guest's (the guest agent). */
$('#page-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = state.selected;
  if (!name) return;
  const gpa = Number(e.currentTarget.elements.gpa.value);
  const g = state.guests.get(name);
  const xp = await g.qmp.execute('human-monitor-command', { 'command-line': `xp /64xb 0x${gpa.toString(16)}` }).catch((err) => err.message);
  $('#host-view').textContent = xp
    .split('\n').filter(Boolean)
    .map((l) => l.replace(/^([0-9a-f]+):/, '$1 ').replace(/0x/g, ''))
    .join('\n');
  let agent;
  try {
    agent = await new Qmp(`/qga/${encodeURIComponent(name)}`).open();
    const r = await agent.execute('guest-memory-read', { gpa, size: 64 });
    const h = b64hex(r.data);
    $('#guest-view').textContent = h.match(/.{1,32}/g).map((row, i) => `${(gpa + i * 16).toString(16).padStart(16, '0')} ${row.match(/../g).join(' ')}`).join('\n');
  } catch (err) {
    $('#guest-view').textContent = err.message;
  } finally {
    agent?.close();
  }
});

$('#add-guest').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.currentTarget.elements;
  const spec = { name: f.name.value, memory: f.memory.value, smp: Number(f.smp.value), paused: f.paused.checked };
  if (f.firmware.value) spec.firmware = f.firmware.value;
  if (f.policy.value.trim()) spec['sev-guest'] = { policy: Number(f.policy.value) };
  try {
    await state.control.execute('guest-add', spec);
    $('#add-result').textContent = `added ${spec.name}`;
  } catch (err) {
    $('#add-result').textContent = err.message;
  }
  await refreshGuests();
});

async function main() {
  try {
    state.control = await new Qmp('/qmp', (m) => logEvent('host', m)).open();
  } catch (err) {
    $('#conn').textContent = err.message;
    $('#conn').className = 'badge bad';
    return;
  }
  $('#conn').textContent = 'connected';
  $('#conn').className = 'badge ok';
  const tick = async () => {
    try {
      await refreshHost();
      await refreshGuests();
      if (state.selected && !state.view) await drawMemory();
    } catch (err) {
      $('#conn').textContent = err.message;
    }
  };
  await tick();
  if (!state.selected && state.guests.size) selectGuest([...state.guests.keys()][0]);
  setInterval(tick, 1000);
}

// For tests and the curious: the view's state.
window.sevdView = state;
main();
