/** What a QMP call through QmpClient ended with, for tests that tabulate many outcomes. */
import { QMPError } from '../../clients/qmp/client.js';

/** undefined for success, else the QMP error's desc (anything that is not a QMP error is thrown). */
export async function outcome(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    if (e instanceof QMPError) return e.desc;
    throw e;
  }
}

/** The QMP error a call ends with, or '(no error)'. */
export async function refusal(p: Promise<unknown>): Promise<string> {
  return (await outcome(p)) ?? '(no error)';
}
