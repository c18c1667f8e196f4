/**
 * The host's /dev/sev as the Linux driver presents it (drivers/crypto/ccp/sev-dev.c):
 * INIT issued on demand before the commands that need it, the length query before reads,
 * FACTORY_RESET refused while guests exist. Management commands go through here.
 */
import { FirmwareError, FwStatus } from './status.js';
import type { Platform, PlatformStatus } from './platform.js';
import type { SnpPlatform, SnpStatus } from './snp-platform.js';
import type { SnpProduct, Tcb } from '../../abi/snp/tcb.js';

export class SevDevice {
  constructor(readonly platform: Platform) {}

  private ensureInit(): void {
    if (this.platform.platformState === 'UNINIT') this.platform.init();
  }

  status(): PlatformStatus {
    return this.platform.status();
  }

  pekGen(): void {
    this.ensureInit();
    this.platform.pekGen();
  }

  pdhGen(): void {
    this.ensureInit();
    this.platform.pdhGen();
  }

  pekCsr(): Buffer {
    this.ensureInit();
    let len = 0;
    try {
      this.platform.pekCsr(null);
    } catch (e) {
      if (!(e instanceof FirmwareError) || e.status !== FwStatus.INVALID_LEN) throw e;
      len = e.lengths['len']!;
    }
    return this.platform.pekCsr({ len });
  }

  pekCertImport(pek: Uint8Array, oca: Uint8Array): void {
    this.ensureInit();
    this.platform.pekCertImport(pek, oca);
  }

  /** Length query, then the read (as QEMU's sev_get_pdh_info does through the driver). */
  pdhCertExport(): { pdh: Buffer; certs: Buffer } {
    this.ensureInit();
    let pdhLen = 0;
    let certsLen = 0;
    try {
      this.platform.pdhCertExport(null, null);
    } catch (e) {
      if (!(e instanceof FirmwareError) || e.status !== FwStatus.INVALID_LEN) throw e;
      pdhLen = e.lengths['pdhLen']!;
      certsLen = e.lengths['certsLen']!;
    }
    return this.platform.pdhCertExport({ len: pdhLen }, { len: certsLen });
  }

  // ---- SNP (milan and later; older chips do not know these commands) ----

  private snpPlatform(cmd: 'SNP_PLATFORM_STATUS' | 'SNP_CONFIG' | 'SNP_COMMIT'): SnpPlatform {
    if (!this.platform.snp) throw new FirmwareError(cmd, FwStatus.INVALID_COMMAND);
    return this.platform.snp;
  }

  snpPlatformStatus(): SnpStatus & { product: SnpProduct } {
    const snp = this.snpPlatform('SNP_PLATFORM_STATUS');
    return { ...snp.status(), product: snp.product };
  }

  snpConfig(a: { reportedTcb?: Tcb; maskChipId?: boolean; maskChipKey?: boolean }): void {
    this.snpPlatform('SNP_CONFIG').config(a);
  }

  snpCommit(): void {
    this.snpPlatform('SNP_COMMIT').commitTcb();
  }

  /** sevd's stand-in for a firmware/microcode update (not a firmware command). */
  snpSetTcb(tcb: Tcb): void {
    this.snpPlatform('SNP_PLATFORM_STATUS').setTcb(tcb);
  }

  getId(): Buffer {
    return this.platform.getId({ len: 64 });
  }

  /** WORKING: refused (sevd reports INVALID_PLATFORM_STATE); INIT: SHUTDOWN first; then INIT again (idle hosts sit in INIT). */
  factoryReset(): void {
    const state = this.platform.platformState;
    if (state === 'WORKING') throw new FirmwareError('FACTORY_RESET', FwStatus.INVALID_PLATFORM_STATE);
    if (state === 'INIT') this.platform.shutdown();
    this.platform.factoryReset();
    this.platform.init();
  }
}
