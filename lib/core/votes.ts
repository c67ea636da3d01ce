import type { Vote } from './types.ts'

/** The votes of `votes.txt`: line N is the vote for transaction `tN`. */
export type VotesFile = readonly Vote[]

/** Parses votes.txt: one `yes` or `no` per line (any case, surrounding spaces and CRLF allowed;
 * trailing blank lines ignored). Throws an Error naming the first bad line. */
export function parseVotes(text: string): VotesFile {
  const lines = text.split(/\r?\n/)
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop()
  return lines.map((line, i) => {
    const word = line.trim().toLowerCase()
    if (word === 'yes' || word === 'no') return word
    throw new Error(`votes.txt line ${i + 1}: expected "yes" or "no", got ${JSON.stringify(line)}`)
  })
}

/** This participant's vote for `txn` from votes.txt: `tN` takes line N; anything else is `no`. */
export function voteFromFile(votes: VotesFile, txn: string): { vote: Vote; reason?: string } {
  const match = /^t([1-9][0-9]*)$/.exec(txn)
  const vote = match ? votes[Number(match[1]) - 1] : undefined
  if (vote === undefined) return { vote: 'no', reason: `votes.txt has no line for ${txn}` }
  return vote === 'no' ? { vote, reason: `votes.txt votes no on ${txn}` } : { vote }
}
