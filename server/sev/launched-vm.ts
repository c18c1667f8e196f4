/**
 * A guest's launched SEV context as the VMM holds it: KVM's VM (with its ASID), the
 * firmware handle, and the SevState QEMU reports. It exists from the SEV INIT (launch or
 * RECEIVE_START) until teardown; a guest without one is `uninit`, so the KVM handle and
 * the state can never disagree.
 */
import type { KvmSev } from '../kvm/kvm-sev.js';

/** QEMU's SevState, in the order of its codes (query-sev, the LSECRET error text). */
export const SEV_STATES = ['uninit', 'launch-update', 'launch-secret', 'running', 'send-update', 'receive-update'] as const;
export type SevState = (typeof SEV_STATES)[number];

export class LaunchedVm {
  state: SevState = 'uninit';

  constructor(readonly kvm: KvmSev, public handle: number) {}
}
