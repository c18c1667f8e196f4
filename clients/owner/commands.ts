/** sev-owner's commands and options: the one definition its parser and its --help use. */
import type { CommandDef, OptionDef } from '../../cli/args.js';

export const PROGRAM = 'sev-owner';
export const VERSION = '0.1.0';

const measurementOptions: OptionDef[] = [
  { name: 'firmware', value: 'FILE', help: 'the firmware image the guest boots (e.g. /usr/share/OVMF/OVMF_CODE.fd)' },
  { name: 'kernel', value: 'FILE', help: 'measured direct boot: the kernel (adds the kernel-hashes table)' },
  { name: 'initrd', value: 'FILE', help: 'measured direct boot: the initrd' },
  { name: 'append', value: 'TEXT', help: 'measured direct boot: the kernel command line' },
  { name: 'vcpus', value: 'N', help: 'SEV-ES: the number of vCPUs (one VMSA each is measured)' },
  { name: 'vcpu-type', value: 'NAME', help: 'SEV-ES: the QEMU CPU model of the vCPUs (default EPYC-v4)' },
  { name: 'api-major', value: 'N', help: 'the platform API major version (query-sev api-major)' },
  { name: 'api-minor', value: 'N', help: 'the platform API minor version (query-sev api-minor)' },
  { name: 'build', value: 'N', help: 'the firmware build id (query-sev build-id)' },
  { name: 'policy', value: 'N', help: 'the guest policy' },
  { name: 'tik', value: 'FILE', help: 'the TIK written by `sev-owner session`' },
];

/** Every command, its options and an example: the parser and the help both come from here. */
export const COMMANDS: Record<string, CommandDef> = {
  verify: {
    name: `${PROGRAM} verify`, summary: 'Verify a platform certificate chain (ARK → ASK → CEK → PEK ← OCA, PEK → PDH) against a trusted ARK.',
    options: [
      { name: 'dir', value: 'DIR', help: 'a directory of <name>.cert files (sevd platform export, sevctl export)' },
      { name: 'export', value: 'FILE', help: "a file holding sevd's sev-export-certs reply (JSON)" },
      { name: 'generation', value: 'NAME', help: "trust AMD's real ARK of this generation (naples, rome, milan, genoa, turin)" },
      { name: 'ark', value: 'FILE', help: 'trust this ARK instead (e.g. an emulated root)' },
    ],
    example: `${PROGRAM} verify --dir certs/ --ark config/amd-roots/milan/ark.cert`,
  },
  session: {
    name: `${PROGRAM} session`, summary: 'Build a launch session for a platform PDH: godh.b64, session.b64, tek.bin, tik.bin.',
    options: [
      { name: 'pdh', value: 'FILE', help: "the platform's PDH certificate (binary or base64)" },
      { name: 'policy', value: 'N', help: 'the guest policy the session is bound to (e.g. 1, or 5 for SEV-ES)' },
      { name: 'out', value: 'DIR', help: 'where to write the four files' },
    ],
    example: `${PROGRAM} session --pdh certs/pdh.cert --policy 1 --out owner/`,
  },
  'measurement build': {
    name: `${PROGRAM} measurement build`, summary: 'Print the launch measurement (base64 MEASURE ‖ MNONCE) a guest should produce.',
    options: [...measurementOptions, { name: 'mnonce', value: 'B64', help: 'the 16-byte MNONCE to measure with (base64)' }],
    example: `${PROGRAM} measurement build --firmware OVMF_CODE.fd --vcpus 4 --vcpu-type EPYC-Milan --api-major 1 --api-minor 55 --build 21 --policy 5 --tik owner/tik.bin --mnonce AAAAAAAAAAAAAAAAAAAAAA==`,
  },
  'measurement verify': {
    name: `${PROGRAM} measurement verify`, summary: 'Check a measurement from query-sev-launch-measure against the expected launch digest (exit 1 if it differs).',
    options: [{ name: 'measure', value: 'B64', help: 'the query-sev-launch-measure data' }, ...measurementOptions],
    example: `${PROGRAM} measurement verify --measure "$M" --firmware OVMF_CODE.fd --api-major 1 --api-minor 55 --build 21 --policy 1 --tik owner/tik.bin`,
  },
  'secret build': {
    name: `${PROGRAM} secret build`, summary: "Build sev-inject-launch-secret's packet-header and secret (EFI secret table, encrypted and MACed).",
    options: [
      { name: 'tek', value: 'FILE', help: 'the TEK written by `sev-owner session`' },
      { name: 'tik', value: 'FILE', help: 'the TIK written by `sev-owner session`' },
      { name: 'measure', value: 'B64', help: 'the verified query-sev-launch-measure data' },
      { name: 'secret', value: 'GUID=TEXT|GUID=@FILE', help: 'a secret table entry', multiple: true },
      { name: 'iv', value: 'B64', help: 'the packet IV (default: random)' },
    ],
    example: `${PROGRAM} secret build --tek owner/tek.bin --tik owner/tik.bin --measure "$M" --secret 736869e5-84f0-4973-92ec-06879ce3da0b=@disk.key`,
  },
  'attestation verify': {
    name: `${PROGRAM} attestation verify`, summary: "Check a query-sev-attestation-report report: the PEK's signature and, if given, mnonce, digest and policy.",
    options: [
      { name: 'report', value: 'B64', help: 'the report (query-sev-attestation-report data)' },
      { name: 'pek', value: 'FILE', help: "the platform's PEK certificate" },
      { name: 'mnonce', value: 'B64', help: 'the expected mnonce' },
      { name: 'digest', value: 'HEX', help: 'the expected launch digest' },
      { name: 'policy', value: 'N', help: 'the expected policy' },
    ],
    example: `${PROGRAM} attestation verify --report "$R" --pek certs/pek.cert --mnonce AAAAAAAAAAAAAAAAAAAAAA==`,
  },
  'snp measure': {
    name: `${PROGRAM} snp measure`, summary: "Print the SNP launch digest (the report's MEASUREMENT) a guest will have, in hex.",
    options: [
      { name: 'firmware', value: 'FILE', help: 'the firmware image (e.g. /usr/share/OVMF/OVMF_CODE.fd)' },
      { name: 'vcpus', value: 'N', help: 'the number of vCPUs (one VMSA each)' },
      { name: 'vcpu-type', value: 'NAME', help: 'the QEMU CPU model (default EPYC-v4)' },
      { name: 'kernel', value: 'FILE', help: 'measured direct boot: the kernel' },
      { name: 'initrd', value: 'FILE', help: 'measured direct boot: the initrd' },
      { name: 'append', value: 'TEXT', help: 'measured direct boot: the kernel command line' },
      { name: 'guest-features', value: 'N', help: 'SEV_FEATURES besides SNPActive (0x20 DebugSwap, 0x200 SecureTSC)' },
    ],
    example: `${PROGRAM} snp measure --firmware /usr/share/OVMF/OVMF_CODE.fd --vcpus 4 --vcpu-type EPYC-Milan`,
  },
  'snp id-block': {
    name: `${PROGRAM} snp id-block`, summary: "Build an ID block and ID auth for a measurement, as JSON with the sev-snp-guest members 'id-block' and 'id-auth'.",
    options: [
      { name: 'measurement', value: 'HEX', help: 'the launch digest the block vouches for (snp measure)' },
      { name: 'policy', value: 'N', help: 'the guest policy (must equal the guest\'s, e.g. 0x30000)' },
      { name: 'id-key', value: 'PEM', help: 'the ID key (P-384 private key, PEM)' },
      { name: 'author-key', value: 'PEM', help: 'an author key that signs the ID key (then set author-key-enabled)' },
      { name: 'family-id', value: 'HEX', help: 'FAMILY_ID (16 bytes)' },
      { name: 'image-id', value: 'HEX', help: 'IMAGE_ID (16 bytes)' },
      { name: 'guest-svn', value: 'N', help: 'the guest SVN' },
    ],
    example: `${PROGRAM} snp id-block --measurement "$(sev-owner snp measure --firmware OVMF_CODE.fd --vcpus 4)" --policy 0x30000 --id-key id.pem`,
  },
  'snp verify': {
    name: `${PROGRAM} snp verify`,
    summary: "Verify an SEV-SNP attestation report: VCEK → ASK → ARK, the report's signature, the VCEK's TCB and hwID, and your expectations.",
    options: [
      { name: 'report', value: 'FILE', help: 'the 1184-byte report (binary, or base64 text)' },
      { name: 'generation', value: 'NAME', help: "the product (milan, genoa, turin): trusts AMD's real chain for it; default: the product the chain's ARK (CN=ARK-Milan, …) or a version 3 report's CPUID names" },
      { name: 'chain', value: 'FILE', help: 'trust this chain instead (PEM, ASK then ARK: KDS cert_chain, or sevd\'s)' },
      { name: 'vcek', value: 'FILE', help: 'the VCEK certificate (DER)' },
      { name: 'kds', value: 'URL', help: 'or fetch the VCEK from this KDS base URL (chip id and reported TCB from the report)' },
      { name: 'measurement', value: 'HEX', help: 'expected launch measurement (48 bytes)' },
      { name: 'firmware', value: 'FILE', help: 'or expect the measurement `snp measure` predicts for this firmware…' },
      { name: 'vcpus', value: 'N', help: '… with this many vCPUs …' },
      { name: 'vcpu-type', value: 'NAME', help: '… of this CPU model (default EPYC-v4)' },
      { name: 'report-data', value: 'HEX', help: 'expected REPORT_DATA (zero-padded to 64 bytes)' },
      { name: 'host-data', value: 'HEX', help: 'expected HOST_DATA (zero-padded to 32 bytes)' },
      { name: 'policy', value: 'N', help: 'expected guest policy' },
      { name: 'min-tcb', value: 'BL,TEE,SNP,UCODE[,FMC]', help: 'the lowest acceptable reported TCB' },
    ],
    example: `${PROGRAM} snp verify --report report.bin --generation milan --kds http://127.0.0.1:4445`,
  },
};

export const TOP: CommandDef = {
  name: PROGRAM, positionals: 'COMMAND [options]', summary: 'The guest-owner toolkit: verify a platform, build a launch session, predict and check measurements, build secrets, check attestation reports.',
  options: [{ name: 'version', help: 'print the version and exit' }],
  example: `${PROGRAM} session --help`,
};
export const COMMAND_LIST = `commands (each answers --help):\n${Object.entries(COMMANDS).map(([n, d]) => `  ${n.padEnd(20)}${d.summary}`).join('\n')}`;

