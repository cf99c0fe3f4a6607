#!/usr/bin/env bash
# Host tests of the Android JNI layer, without an NDK or a device: builds
# librwkv7_android.so for this machine, makes test models, and runs the Java tests (and the
# Kotlin tests when kotlinc can be had) on the host JVM with -Xcheck:jni. Greedy output is
# compared with `rwkv7 generate --temp 0` on the same model and prompt.
# Usage: targets/android/test-host.sh        Last line: "N passed, M failed" (exit 1 on failure).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=$root/target/android-test
mkdir -p "$out"

step() { printf '\n==> %s\n' "$*"; }

step "build librwkv7_android.so (host), the rwkv7 CLI and the converter"
cargo build -p rwkv7-android -p rwkv7-cli -p rwkv7-quant --locked
lib=$root/target/debug/librwkv7_android.so
[ -f "$lib" ] || { echo "missing $lib"; exit 1; }

step "test models"
# A golden fixture (V = 301) with the 256-byte vocabulary of the demo trainer.
target/debug/rwkv7-quant quantize tests/fixtures/h1_l3_bf16/model.pth -o "$out/tiny.gguf" --type f32 \
  --vocab tools/train-demo/vocab_bytes.txt >/dev/null
# A corrupt model: the same file cut in half (the tensor table points past the end).
size=$(stat -c %s "$out/tiny.gguf")
head -c $((size / 2)) "$out/tiny.gguf" >"$out/corrupt.gguf"
# name|model|prompt: the fixture always, the trained demo model too when it is in the tree.
models=("tiny|$out/tiny.gguf|Hello")
if [ -f models/demo/demo-bf16.gguf ]; then
  models+=("demo|$root/models/demo/demo-bf16.gguf|It is a truth universally acknowledged")
fi
tokens=48

step "compile the Java API and tests (javac $(javac -version 2>&1 | awk '{print $2}'))"
rm -rf "$out/classes" && mkdir -p "$out/classes"
javac -Xlint:all -Werror -d "$out/classes" \
  $(find targets/android/jvm/src/main/java targets/android/jvm/src/test/java -name '*.java' | sort)

# Kotlin: npm's kotlin-compiler carries the full kotlinc distribution, kotlin-stdlib and
# kotlinx-coroutines-core-jvm (Maven Central is not reachable, so no Gradle).
kotlin_home=${RWKV7_KOTLIN_HOME:-$root/target/kotlin/node_modules/kotlin-compiler}
kotlin=""
kotlin_skip=""
if [ ! -x "$kotlin_home/bin/kotlinc" ]; then
  if command -v npm >/dev/null; then
    step "install kotlin-compiler@2.4.20 from npm into target/kotlin"
    if npm install --prefix "$root/target/kotlin" --no-audit --no-fund kotlin-compiler@2.4.20 >"$out/npm.log" 2>&1; then
      chmod +x "$kotlin_home"/bin/*
    else
      tail -5 "$out/npm.log"
      kotlin_skip="npm install kotlin-compiler@2.4.20 failed (see $out/npm.log)"
    fi
  else
    kotlin_skip="no kotlinc at $kotlin_home and no npm to install kotlin-compiler@2.4.20"
  fi
fi
if [ -z "$kotlin_skip" ] && [ ! -f "$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar" ]; then
  kotlin_skip="$kotlin_home/lib has no kotlinx-coroutines-core-jvm.jar"
fi
if [ -z "$kotlin_skip" ]; then
  step "compile the Kotlin API and tests ($("$kotlin_home/bin/kotlinc" -version 2>&1 | grep -o 'kotlinc-jvm [0-9.]*'))"
  klib=$kotlin_home/lib
  rm -rf "$out/kotlin-classes" && mkdir -p "$out/kotlin-classes"
  "$kotlin_home/bin/kotlinc" -Werror -jvm-target 17 -cp "$out/classes:$klib/kotlinx-coroutines-core-jvm.jar" \
    -d "$out/kotlin-classes" targets/android/jvm/src/main/kotlin targets/android/jvm/src/test/kotlin
  kotlin="$out/kotlin-classes:$klib/kotlin-stdlib.jar:$klib/kotlinx-coroutines-core-jvm.jar"
fi

total_passed=0
total_failed=0
summaries=()
# Runs one test program; adds its "N passed, M failed" to the totals. -Xcheck:jni warnings
# count as a failure, and so does a run that ends without its summary line (a crash).
run_suite() {
  local name=$1 log=$out/$1.log
  shift
  step "$name"
  set +e
  java -Xcheck:jni -Drwkv7.library.path="$lib" "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  local last p f
  last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 || true)
  if [ -z "$last" ]; then
    p=0 f=1
    echo "FAIL $name: no summary line (exit status $status)"
  else
    p=${last%% passed*}
    f=${last#*, }
    f=${f%% failed}
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  fi
  if grep -qE 'WARNING in native method|WARNING: JNI local refs|FATAL ERROR in native method' "$log"; then
    echo "FAIL $name: -Xcheck:jni reported problems"
    f=$((f + 1))
  fi
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  summaries+=("$name: $p passed, $f failed")
}

for entry in "${models[@]}"; do
  IFS='|' read -r name model prompt <<<"$entry"
  step "reference: rwkv7 generate -m $(basename "$model") -p \"$prompt\" -n $tokens --temp 0"
  target/debug/rwkv7 generate -m "$model" -p "$prompt" -n $tokens --temp 0 >"$out/$name.expected"
  cat -v "$out/$name.expected" # the fixture's text is random bytes: show them printable
  echo
  args=(--model "$model" --corrupt "$out/corrupt.gguf" --prompt "$prompt" --tokens $tokens
    --expected "$out/$name.expected" --scratch "$out/scratch-$name")
  run_suite "java-$name" -cp "$out/classes" org.rwkv7.HostTest "${args[@]}"
  if [ -n "$kotlin" ]; then
    run_suite "kotlin-$name" -cp "$out/classes:$kotlin" org.rwkv7.KotlinHostTestKt "${args[@]}"
  fi
done

echo
for s in "${summaries[@]}"; do echo "  $s"; done
if [ -n "$kotlin_skip" ]; then
  echo "SKIPPED: kotlin ($kotlin_skip)"
fi
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
