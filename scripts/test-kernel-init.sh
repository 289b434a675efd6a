#!/busybox/busybox sh
# The guest side of scripts/test-kernel.sh: busybox init (PID 1, which reaps the processes the
# tests leave to it) runs this as its sysinit action. It mounts what the tests need, loads the
# kernel modules, runs the tests of each binary of $SUITES (see run_suite) with their output on
# the console (ttyS0), then sends the gtest XML reports, the
# exit codes, the verifier figures and the kernel log to the host as a base64 tar on the second
# serial port (ttyS1), and powers off.
export PATH=/usr/sbin:/usr/bin:/busybox/bin
export HOME=/tmp
. /weir-vm.conf
export WEIR_POLPROG_POLICIES=$POLPROG_POLICIES

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
# /tmp stays the initramfs's own (writable) directory: a tmpfs over it would hide a build that
# lives under /tmp (a CI clone), whose binaries sit at their absolute paths.
chmod 1777 /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname weir-vm
for m in $(cat /modules/order); do
  insmod "/modules/$m" || echo "weir-vm: insmod $m failed"
done
/usr/sbin/ip link set lo up
# A sanitized build (scripts/build.sh --sanitize) writes every ASan/UBSan report, from a test or
# from a weir process it started, into /results/sanitizer/: it comes back with the results and
# scripts/test-kernel.sh fails the run when it is not empty. No effect on other builds.
# Leaks are not looked for here (ASAN_EXTRA, WEIR_VM_ASAN_OPTIONS on the host, may turn it back
# on): the host run of the same binaries does it, and it is kernel-independent; at every exit of
# every weir process the scan cost the guest's emulated CPUs ~15% of the e2e tests' time.
mkdir -p /results/sanitizer
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=0:log_path=/results/sanitizer/asan${ASAN_EXTRA:+:$ASAN_EXTRA}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=/results/sanitizer/ubsan

echo "weir-vm: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, modules: $(tr '\n' ' ' < /modules/order)"
cd "$BUILD_DIR" || echo "weir-vm: no $BUILD_DIR in the guest"

# list_tests BINARY: "Suite.Test" per line (gtest --gtest_list_tests, comments dropped).
list_tests() {
  set -- --gtest_list_tests
  [ -n "$GTEST_FILTER" ] && set -- "$@" "--gtest_filter=$GTEST_FILTER"
  "$bin" "$@" | while IFS= read -r line; do
    line=${line%%#*}
    case "$line" in
      " "*) echo "$suite$(echo $line)" ;;
      *.*) suite=$(echo $line) ;;
    esac
  done
}

# run_group NAME GROUP: the tests of GROUP in one process, with a timeout of TEST_TIMEOUT
# seconds per test. Writes GROUP.xml and GROUP.rc ("exit-status seconds"); the output is kept
# aside and shown on the console in one piece when the group ends (under a lock: WORKERS groups
# run side by side).
run_group() {
  name=$1
  g=$2
  filter=$(grep "^$g " "/results/$name/groups" | cut -d' ' -f2 | tr '\n' ':')
  n=$(grep -c "^$g " "/results/$name/groups")
  start=$(date +%s)
  timeout $((TEST_TIMEOUT * n)) "$bin" "--gtest_filter=${filter%:}" "--gtest_output=xml:/results/$name/$g.xml" \
    > "/tmp/$name.$g.log" 2>&1
  rc=$?
  echo "$rc $(( $(date +%s) - start ))" > "/results/$name/$g.rc"
  {
    flock 9
    cat "/tmp/$name.$g.log"
    [ $rc -eq 0 ] || echo "weir-vm: $g: exit status $rc"
  } 9> /run/weir-console.lock
  rm -f "/tmp/$name.$g.log"
}

# write_groups NAME: /results/NAME/groups ("group test" per line) for build/weir_NAME_tests. A
# group is one test, or with NAME in ONE_PROCESS a WORKERS-th of the binary's tests (its
# fixtures then share what is costly to set up: the loaded TC object, see TcObject::shared).
write_groups() {
  name=$1
  bin=$BUILD_DIR/weir_${name}_tests
  workers=$WORKERS
  [ "$name" = e2e ] && workers=${E2E_WORKERS:-$WORKERS}
  mkdir -p "/results/$name"
  tests=$(list_tests)
  per=test
  case " $ONE_PROCESS " in *" $name "*) per=binary ;; esac
  i=0
  for t in $tests; do
    if [ $per = binary ]; then echo "part$((i % workers)) $t"; else echo "$t $t"; fi
    i=$((i + 1))
  done > "/results/$name/groups"
}

# The guest's CPU time so far, from /proc/stat's first line (in USER_HZ ticks, 1/100 s): where
# the guest spends it (user: the tests and weir; system: mostly the verifier), to see what to
# make cheaper when the test command's 20 minutes get tight.
cpu_times() {
  awk '/^cpu / { printf "guest CPU so far: user %ds, system %ds, idle %ds", ($2 + $3) / 100, ($4 + $7 + $8) / 100, ($5 + $6) / 100 }' /proc/stat
}

# run_suite NAME: the tests of build/weir_NAME_tests, in groups (write_groups) spread over
# WORKERS processes (E2E_WORKERS for the e2e tests) that run side by side (the guest has as many
# CPUs; every test names what it creates with its own run id, as under a parallel ctest).
run_suite() {
  write_groups "$1"
  # The longest tests first (ClusterE2E.*: three agents each, when the filter lets them in), so
  # that they do not end the suite alone on one worker while the other has nothing left.
  cut -d' ' -f1 "/results/$name/groups" | awk '!seen[$0]++' |
    awk '/^ClusterE2E\./ { print; next } { rest[n++] = $0 } END { for (i = 0; i < n; i++) print rest[i] }' \
    > "/tmp/$name.queue"
  echo 0 > "/tmp/$name.next"
  echo "weir-vm: ==== weir_${name}_tests: $(echo "$tests" | grep -c .) tests in" \
       "$(grep -c . "/tmp/$name.queue") processes, $workers at a time"
  suite_start=$(date +%s)
  pids=
  w=0
  while [ $w -lt "$workers" ]; do
    (
      # A work queue: each worker takes the next group when it is free.
      while :; do
        g=$(
          {
            flock 8
            k=$(cat "/tmp/$name.next")
            echo $((k + 1)) > "/tmp/$name.next"
            sed -n "$((k + 1))p" "/tmp/$name.queue"
          } 8> "/tmp/$name.queue.lock"
        )
        [ -n "$g" ] || break
        run_group "$name" "$g"
      done
    ) &
    pids="$pids $!"
    w=$((w + 1))
  done
  wait $pids
  echo "weir-vm: ==== weir_${name}_tests done in $(( $(date +%s) - suite_start ))s; $(cpu_times)"
}
# SUITES_TOGETHER=1 runs the suites side by side (the BPF tests keep one vCPU busy with the
# verifier while the e2e tests mostly wait): faster on an idle host, see scripts/test-kernel.sh.
if [ "${SUITES_TOGETHER:-0}" = 1 ]; then
  for s in $SUITES; do run_suite "$s" & done
  wait
else
  for s in $SUITES; do run_suite "$s"; done
fi

mkdir -p /results/verifier
cp "$BUILD_DIR"/verifier/*.tsv /results/verifier/ 2>/dev/null
uname -r > /results/release
dmesg > /results/dmesg.txt 2>&1
echo "weir-vm: sending results"
tar -C /results -cf - . | base64 > /dev/ttyS1
sync
poweroff -f
