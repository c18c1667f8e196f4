/**
 * Request checks before dispatch (QEMU qapi/qmp-dispatch.c qmp_dispatch_check_obj):
 * members are examined in QDict order, the first failure wins.
 */
import type { QDict, QObject } from './json/qobject.js';
import { isQDict } from './json/qobject.js';
import { qdictOrder } from './json/qdict-order.js';
import { Errors, QmpError } from './errors.js';

export interface Request {
  command: string;
  oob: boolean;
  arguments: QDict;
  id: QObject | undefined;
}

const EMPTY_ARGS: QDict = new Map();

/** Returns the request, or a QmpError together with the id to echo (if any). */
export function checkRequest(msg: QObject, allowOob: boolean): Request | { error: QmpError; id: QObject | undefined } {
  if (!isQDict(msg)) return { error: Errors.notAnObject(), id: undefined };
  const id = msg.get('id');
  const keys = [...msg.keys()];
  let execKey: string | undefined;
  for (const i of qdictOrder(keys)) {
    const key = keys[i]!;
    const value = msg.get(key)!;
    if (key === 'execute' || (key === 'exec-oob' && allowOob)) {
      if (typeof value !== 'string') return { error: Errors.memberNotString(key), id };
      if (execKey) return { error: Errors.memberClash(key, execKey), id };
      execKey = key;
    } else if (key === 'arguments') {
      if (!isQDict(value)) return { error: Errors.argumentsNotObject(), id };
    } else if (key !== 'id') {
      return { error: Errors.memberUnexpected(key), id };
    }
  }
  if (!execKey) return { error: Errors.lacksExecute(), id };
  const args = msg.get('arguments');
  return {
    command: msg.get(execKey) as string,
    oob: execKey === 'exec-oob',
    arguments: (args as QDict | undefined) ?? EMPTY_ARGS,
    id,
  };
}

/** QEMU's qmp_is_oob(): such requests bypass the in-band queue. */
export function isOobRequest(msg: QObject): boolean {
  return isQDict(msg) && msg.has('exec-oob') && !msg.has('execute');
}
