/** The guest agent (docs/interface.md §8): what software inside the guest sees. */
import type { Expr } from './defs.js';

export const agentSchema = [
  { command: 'guest-ping', readOnly: true, monitors: ['agent'] },
  { struct: 'GuestAgentCommandInfo', data: { name: 'str', enabled: 'bool', 'success-response': 'bool' } },
  { struct: 'GuestAgentInfo', data: { version: 'str', supported_commands: ['GuestAgentCommandInfo'] } },
  { command: 'guest-info', readOnly: true, returns: 'GuestAgentInfo', monitors: ['agent'] },
  { struct: 'GuestMemoryData', data: { data: 'str' } },
  { command: 'guest-memory-read', readOnly: true, data: { gpa: 'uint64', size: 'uint32' }, returns: 'GuestMemoryData', monitors: ['agent'] },
  { command: 'guest-memory-write', data: { gpa: 'uint64', data: 'str' }, monitors: ['agent'] },
  { struct: 'GuestSevFeatures', data: { sev: 'bool', 'sev-es': 'bool', 'sev-snp': 'bool', 'sev-features': 'uint64' } },
  { command: 'guest-sev-features', readOnly: true, returns: 'GuestSevFeatures', monitors: ['agent'] },
  { struct: 'GuestSnpCert', data: { guid: 'str', data: 'str' } },
  { struct: 'GuestSnpReport', data: { report: 'str', '*certs': ['GuestSnpCert'] } },
  { command: 'guest-snp-report', data: { '*report-data': 'str', '*vmpl': 'uint8', '*extended': 'bool' }, returns: 'GuestSnpReport', monitors: ['agent'] },
  { enum: 'GuestSnpRootKey', data: ['vcek', 'vmrk'] },
  { struct: 'GuestSnpKey', data: { key: 'str' } },
  {
    command: 'guest-snp-derive-key',
    data: { '*root-key': 'GuestSnpRootKey', '*guest-field-select': 'uint64', '*vmpl': 'uint8', '*guest-svn': 'uint32', '*tcb-version': 'uint64' },
    returns: 'GuestSnpKey',
    monitors: ['agent'],
  },
  { struct: 'GuestSnpMessage', data: { response: 'str' } },
  { command: 'guest-snp-message', data: { request: 'str' }, returns: 'GuestSnpMessage', monitors: ['agent'] },
  {
    command: 'guest-set-memory-attributes',
    data: { gpa: 'uint64', size: 'uint64', private: 'bool' },
    monitors: ['agent'],
  },
] as const satisfies readonly Expr[];
