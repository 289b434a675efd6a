#!/busybox/busybox sh
# The guest side of scripts/test-kernel.sh: busybox init (PID 1, which reaps the processes the
# tests leave to it) runs this as its sysinit action. It mounts what the tests need, loads the
# kernel modules, runs each test binary of $SUITES with its output on the console (ttyS0), then
# sends the gtest XML reports, the exit codes, the verifier figures and the kernel log to the host
# as a base64 tar on the second serial port (ttyS1), and powers off.
export PATH=/usr/sbin:/usr/bin:/busybox/bin
export HOME=/tmp
. /weir-vm.conf

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname weir-vm
for m in $(cat /modules/order); do
  insmod "/modules/$m" || echo "weir-vm: insmod $m failed"
done
/usr/sbin/ip link set lo up

echo "weir-vm: kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs, modules: $(cat /modules/order | tr '\n' ' ')"
cd "$BUILD_DIR" || echo "weir-vm: no $BUILD_DIR in the guest"

# run_suite NAME SECONDS: build/weir_NAME_tests with its XML report and exit code in /results.
run_suite() {
  name=$1
  set -- "--gtest_output=xml:/results/$name.xml"
  [ -n "$GTEST_FILTER" ] && set -- "$@" "--gtest_filter=$GTEST_FILTER"
  echo "weir-vm: ==== weir_${name}_tests $*"
  start=$(date +%s)
  timeout "$SUITE_TIMEOUT" "$BUILD_DIR/weir_${name}_tests" "$@" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  echo "$rc $secs" > "/results/$name.rc"
  echo "weir-vm: ==== weir_${name}_tests exit status $rc after ${secs}s"
}
for s in $SUITES; do run_suite "$s"; done

mkdir -p /results/verifier
cp "$BUILD_DIR"/verifier/*.tsv /results/verifier/ 2>/dev/null
uname -r > /results/release
dmesg > /results/dmesg.txt 2>&1
echo "weir-vm: sending results"
tar -C /results -cf - . | base64 > /dev/ttyS1
sync
poweroff -f
