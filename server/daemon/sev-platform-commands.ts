/**
 * QMP for the platform: query-sev-capabilities (QEMU's steps and texts, on every monitor)
 * and the control commands of docs/interface.md §5, with firmware failures as
 * `SEV: <CMD> failed: fw_err=<n> (<text>)`.
 */
import type { Handler, Handlers } from '../dispatch/dispatcher.js';
import type { SessionContext } from '../dispatch/common-commands.js';
import { atLeast } from '../dispatch/version.js';
import { glibBase64Decode } from '../util/base64.js';
import { QmpError } from '../errors/qmp-error.js';
import type { SevDevice } from '../firmware/sev-device.js';
import { fwCall, SevFailure } from '../sev/qemu-errors.js';
import { SnpTcbError } from '../firmware/snp-platform.js';
import { decodeTcb } from '../../abi/snp/tcb.js';

export interface SevHostContext extends SessionContext {
  sev: SevDevice;
  /** CPUID 0x8000001F EBX[5:0] of the emulated host. */
  cbitpos: number;
}

export function sevCapabilitiesHandler<C extends SevHostContext>(): Handler<C, 'query-sev-capabilities'> {
  return (_a, { sev, cbitpos, session }) => {
    const v = session.monitor.version;
    const modern = atLeast(v, '6.2.0');
    const { pdh, certs } = fwCall(() => sev.pdhCertExport(), SevFailure.exportPdh(modern));
    const cpu0Id = atLeast(v, '7.1.0') ? fwCall(() => sev.getId(), SevFailure.getId).toString('base64') : undefined;
    return {
      pdh: pdh.toString('base64'),
      'cert-chain': certs.toString('base64'),
      'cpu0-id': cpu0Id,
      cbitpos,
      // QEMU hard-codes 1 whatever CPUID says.
      'reduced-phys-bits': 1,
    };
  };
}

export function sevPlatformHandlers<C extends SevHostContext>(): Handlers<C> {
  return {
    'query-sev-capabilities': sevCapabilitiesHandler<C>(),
    'sev-platform-status': (_a, { sev }) => {
      const s = fwCall(() => sev.status());
      return {
        'api-major': s.apiMajor, 'api-minor': s.apiMinor, 'build-id': s.build,
        state: s.state.toLowerCase(), owner: s.owner, es: s.es, 'guest-count': s.guestCount,
      };
    },
    'sev-export-certs': (_a, { sev }) => {
      const { pdh, certs } = fwCall(() => sev.pdhCertExport());
      const root = sev.platform.emulatedRoot;
      const part = (i: number) => certs.subarray(i * 0x824, (i + 1) * 0x824).toString('base64');
      return { pdh: pdh.toString('base64'), pek: part(0), oca: part(1), cek: part(2), ask: root.ask.toString('base64'), ark: root.ark.toString('base64') };
    },
    'sev-pek-gen': (_a, { sev }) => fwCall(() => sev.pekGen()),
    'sev-pdh-gen': (_a, { sev }) => fwCall(() => sev.pdhGen()),
    'sev-factory-reset': (_a, { sev }) => fwCall(() => sev.factoryReset()),
    'sev-pek-csr': (_a, { sev }) => ({ data: fwCall(() => sev.pekCsr()).toString('base64') }),
    'sev-snp-platform-status': (_a, { sev }) => {
      const s = fwCall(() => sev.snpPlatformStatus());
      const st = sev.status();
      const tcb = (v: bigint) => ({ ...decodeTcb(s.product, v) }) as Record<string, number>;
      return {
        'api-major': st.apiMajor, 'api-minor': st.apiMinor, 'build-id': st.build, state: 'init', 'rmp-initialized': true,
        'guest-count': s.guestCount, 'chip-id': sev.getId().toString('hex'), 'mask-chip-id': s.maskChipId, 'mask-chip-key': s.maskChipKey,
        'current-tcb': tcb(s.current), 'reported-tcb': tcb(s.reported), 'committed-tcb': tcb(s.committed),
      };
    },
    'sev-snp-set-config': (args, { sev }) =>
      fwCall(() => sev.snpConfig({
        ...(args['reported-tcb'] ? { reportedTcb: args['reported-tcb'] } : {}),
        ...(args['mask-chip-id'] !== undefined ? { maskChipId: args['mask-chip-id'] } : {}),
        ...(args['mask-chip-key'] !== undefined ? { maskChipKey: args['mask-chip-key'] } : {}),
      })),
    'sev-snp-commit': (_a, { sev }) => fwCall(() => sev.snpCommit()),
    'sev-snp-set-tcb': (args, { sev }) => {
      try {
        fwCall(() => sev.snpSetTcb(args));
      } catch (e) {
        if (e instanceof SnpTcbError) throw QmpError.generic(e.message);
        throw e;
      }
    },
    'sev-pek-cert-import': (args, { sev }) =>
      fwCall(() => sev.pekCertImport(glibBase64Decode(args['pek-cert']), glibBase64Decode(args['oca-cert']))),
  };
}
