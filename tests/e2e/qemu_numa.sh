#!/usr/bin/env bash
# End-to-end test on a real multi-NUMA Linux kernel (see docs/e2e.md).
#
# Boots the host's Debian kernel under qemu (TCG software emulation; KVM is not needed and
# not used unless NMM_E2E_KVM=1) with 4 NUMA nodes (node 3 without CPUs), distances and
# 2 MiB hugepages reserved on every node. Inside the guest:
#   1. `nmm node -o json` must describe exactly the topology qemu was given;
#   2. the nmm-agent `enforce` example (Agent + CgroupEnforcer) admits four pods on that
#      machine and writes cpuset.cpus / cpuset.mems of the cgroups of the last two;
#   3. a static helper (alloc.c) started in that cgroup touches 64 MiB of anonymous memory
#      and 32 MiB of hugepages: /proc/PID/numa_maps must show them on the assigned node;
#   4. `nmm agent` restarts from the checkpoints the example wrote and must accept them,
#      and must find the cpuset hierarchy from /proc/self/mountinfo.
# The guest boots twice: with cgroup v2 (the unified hierarchy at /sys/fs/cgroup) and with
# cgroup v1 (a tmpfs at /sys/fs/cgroup, the cpuset hierarchy at /sys/fs/cgroup/cpuset, as
# on v1 and hybrid hosts). NMM_E2E_CGROUPS="v2 v1" (the default) selects the boots.
#
# Run as root: installs qemu-system-x86, linux-image-amd64, busybox-static (and jq, gcc,
# libc6-dev when missing) with apt-get. Exits 0 with "SKIP" when they cannot be installed.
# Environment: NMM_E2E_TIMEOUT (qemu timeout, s, default 600), NMM_E2E_KEEP=1 (keep the
# work directory), CARGO_TARGET_DIR (default /tmp/target-e2e), NMM_E2E_KVM=1 (use -accel kvm).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
T0=$(date +%s)
TIMEOUT="${NMM_E2E_TIMEOUT:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/target-e2e}"

log() { printf '[e2e %4ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
skip() { echo "SKIP: qemu NUMA end-to-end test: $*"; exit 0; }
die() { echo "FAIL: qemu NUMA end-to-end test: $*"; exit 1; }

# ---------------------------------------------------------------- the topology given to qemu
NODES=4
NODE_CPUS=("0-1" "2-3" "4-5" "")          # node 3: memory only
NODE_MIB=1024                              # memory per node
HP_PAGES=32                                # 2 MiB hugepages reserved per node (64 MiB)
# Distance matrix (symmetric), row i = node i.
DIST=("10 21 31 41" "21 10 21 31" "31 21 10 21" "41 31 21 10")
ANON_MIB=64
HUGE_MIB=32

# ---------------------------------------------------------------- packages
[ "$(id -u)" = 0 ] || skip "must run as root (installs packages with apt-get)"
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v jq >/dev/null || need+=(jq)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || skip "missing ${need[*]} and no apt-get to install them"
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >/tmp/nmm-e2e-apt.log 2>&1 \
        && apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/nmm-e2e-apt.log 2>&1 \
        || skip "apt-get could not install ${need[*]} (log: /tmp/nmm-e2e-apt.log)"
fi
KERNEL=$(ls -v /boot/vmlinuz-* 2>/dev/null | tail -n1)
[ -n "$KERNEL" ] && [ -r "$KERNEL" ] || skip "no readable kernel in /boot"
BUSYBOX=/bin/busybox
ldd "$BUSYBOX" >/dev/null 2>&1 && skip "$BUSYBOX is dynamically linked (busybox-static is needed)"
ACCEL=(-accel tcg,thread=multi)
[ "${NMM_E2E_KVM:-0}" = 1 ] && [ -w /dev/kvm ] && ACCEL=(-accel kvm)

# ---------------------------------------------------------------- build
log "building nmm and the enforce example (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
# One invocation, so that both binaries share one feature resolution (one build).
(cd "$REPO" && cargo build --release --locked -q -p nmm --bin nmm -p nmm-agent --example enforce) \
    || die "cargo build failed"
NMM="$CARGO_TARGET_DIR/release/nmm"
ENFORCE="$CARGO_TARGET_DIR/release/examples/enforce"

WORK=$(mktemp -d /tmp/nmm-e2e.XXXXXX)
cleanup() { [ "${NMM_E2E_KEEP:-0}" = 1 ] && echo "work directory kept: $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
ROOT="$WORK/initramfs"
mkdir -p "$ROOT"/{bin,lib,lib64,proc,sys,dev,tmp,etc,e2e,var/lib/nmm}

gcc -static -O2 -o "$ROOT/bin/alloc" "$HERE/alloc.c" || die "gcc -static alloc.c failed"
cp "$BUSYBOX" "$ROOT/bin/busybox"
cp "$NMM" "$ENFORCE" "$ROOT/bin/"
# The release profile keeps debug info (debug = 1): strip the copies, 4x smaller initramfs.
strip "$ROOT/bin/nmm" "$ROOT/bin/enforce" 2>/dev/null || true
# Shared libraries and the dynamic loader of the two Rust binaries, at their host paths.
for lib in $( (ldd "$NMM"; ldd "$ENFORCE") | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
done

# ---------------------------------------------------------------- guest files
kubelet_json() {
    cat <<'EOF'
{
  "apiVersion": "kubelet.config.k8s.io/v1beta1",
  "kind": "KubeletConfiguration",
  "memoryManagerPolicy": "Static",
  "cpuManagerPolicy": "static",
  "topologyManagerPolicy": "single-numa-node",
  "topologyManagerScope": "container",
  "reservedSystemCPUs": "0",
  "kubeReserved": {"memory": "100Mi"},
  "evictionHard": {"memory.available": "100Mi"},
  "reservedMemory": [{"numaNode": 0, "limits": {"memory": "200Mi"}}]
}
EOF
}
kubelet_json >"$ROOT/e2e/kubelet.json"
pod_json() { # name cpu memory [hugepages-2Mi]
    local hp=""
    [ -n "${4:-}" ] && hp=", \"hugepages-2Mi\": \"$4\""
    cat <<EOF
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "$1", "namespace": "e2e", "uid": "uid-$1"},
 "spec": {"containers": [{"name": "app", "image": "none",
   "resources": {"requests": {"cpu": "$2", "memory": "$3"$hp},
                 "limits": {"cpu": "$2", "memory": "$3"$hp}}}]}}
EOF
}
# CPU 0 is reserved: filler-a takes node 0's last CPU, filler-b both CPUs of node 1, so the
# single-numa-node policy can only put `app` (one exclusive CPU) on node 2. `mem3` runs in
# the shared pool (500m) and asks for more memory than nodes 0-2 have left (at most
# ~1007Mi MemTotal - 64Mi hugepages - 200Mi reserved / 300Mi filler-b / 256Mi app):
# only the CPU-less node 3 fits.
pod_json filler-a 1 100Mi >"$ROOT/e2e/filler-a.json"
pod_json filler-b 2 300Mi >"$ROOT/e2e/filler-b.json"
pod_json app 1 256Mi "${HUGE_MIB}Mi" >"$ROOT/e2e/app.json"
pod_json mem3 500m 800Mi "${HUGE_MIB}Mi" >"$ROOT/e2e/mem3.json"

cat >"$ROOT/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
echo 1 > /proc/sys/kernel/printk
ip link set lo up 2>/dev/null
MODE=\$(cat /e2e/mode)
mkdir -p /sys/fs/cgroup
if [ "\$MODE" = v1 ]; then
  mount -t tmpfs cgroup_root /sys/fs/cgroup
  mkdir -p /sys/fs/cgroup/cpuset && mount -t cgroup -o cpuset cpuset /sys/fs/cgroup/cpuset
  CG=/sys/fs/cgroup/cpuset
else
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  CG=/sys/fs/cgroup
fi
mark() { echo "=== NMM-E2E \$1 ==="; }
finish() { mark DONE; sync; poweroff -f; sleep 5; reboot -f; }

echo; mark BOOTED   # a line of its own after the firmware's terminal resets
echo "uname \$(uname -r) cpus \$(cat /sys/devices/system/cpu/online)"
for n in /sys/devices/system/node/node*; do
  echo $HP_PAGES > \$n/hugepages/hugepages-2048kB/nr_hugepages
  echo "hugepages \${n##*node} \$(cat \$n/hugepages/hugepages-2048kB/nr_hugepages)"
  echo "meminfo \${n##*node} \$(sed -n 's/.*MemTotal: *\([0-9]*\) kB/\1/p' \$n/meminfo)"
done

mark NODE-JSON-BEGIN
nmm node -o json > /tmp/machine.json; echo "nmm-node-exit \$?"
cat /tmp/machine.json
mark NODE-JSON-END
nmm node -o table

mark ENFORCE-BEGIN
echo "cgroup-mode \$MODE root \$CG"
grep cgroup /proc/self/mountinfo
if [ "\$MODE" = v1 ]; then
  # v1: a new cpuset cgroup starts empty; each level takes its parent's CPUs and nodes.
  for pod in app mem3; do
    for d in kubepods kubepods/poduid-\$pod kubepods/poduid-\$pod/app; do
      p=\$CG/\$(dirname \$d); [ "\$(dirname \$d)" = . ] && p=\$CG
      mkdir -p \$CG/\$d
      cat \$p/cpuset.cpus > \$CG/\$d/cpuset.cpus
      cat \$p/cpuset.mems > \$CG/\$d/cpuset.mems
    done
  done
else
  echo +cpuset > \$CG/cgroup.subtree_control
  for pod in app mem3; do
    mkdir -p \$CG/kubepods/poduid-\$pod/app
    echo +cpuset > \$CG/kubepods/cgroup.subtree_control
    echo +cpuset > \$CG/kubepods/poduid-\$pod/cgroup.subtree_control
  done
fi
enforce --machine /tmp/machine.json --kubelet-config /e2e/kubelet.json \\
  --state-dir /var/lib/nmm --cgroup-root \$CG \\
  --pod /e2e/filler-a.json --pod /e2e/filler-b.json --pod /e2e/app.json --pod /e2e/mem3.json \\
  --start uid-app:app:kubepods/poduid-app/app --start uid-mem3:app:kubepods/poduid-mem3/app
echo "enforce-exit \$?"
for pod in app mem3; do
  echo "cgroup \$pod cpuset.cpus \$(cat \$CG/kubepods/poduid-\$pod/app/cpuset.cpus)"
  echo "cgroup \$pod cpuset.mems \$(cat \$CG/kubepods/poduid-\$pod/app/cpuset.mems)"
done
mark ENFORCE-END

for pod in app mem3; do
  mark ALLOC-\$pod-BEGIN
  # one output file per pod: with a shared one, the wait below could read the previous
  # pod's "ready" before the new helper's shell had truncated it
  OUT=/tmp/alloc-\$pod.out
  rm -f \$OUT
  sh -c "echo \\\$\\\$ > \$CG/kubepods/poduid-\$pod/app/cgroup.procs && exec alloc $ANON_MIB $HUGE_MIB" > \$OUT 2>&1 &
  i=0
  while ! grep -q ready \$OUT 2>/dev/null && [ \$i -lt 600 ]; do sleep 1; i=\$((i+1)); done
  cat \$OUT
  PID=\$(sed -n 's/^alloc pid=\([0-9]*\).*/\1/p' \$OUT)
  echo "cgroup-of-pid \$(cat /proc/\$PID/cgroup)"
  grep -E '^(Cpus|Mems)_allowed_list' /proc/\$PID/status
  mark NUMA-MAPS-\$pod-BEGIN
  cat /proc/\$PID/numa_maps
  mark NUMA-MAPS-\$pod-END
  kill \$PID
  mark ALLOC-\$pod-END
done

mark AGENT-BEGIN
nmm agent --config /e2e/kubelet.json --state-dir /var/lib/nmm --metrics-addr off \\
  --no-nri --cgroup-root /sys/fs/cgroup > /tmp/agent.out 2>&1 &
APID=\$!
i=0
while ! grep -q serving /tmp/agent.out && kill -0 \$APID 2>/dev/null && [ \$i -lt 120 ]; do sleep 1; i=\$((i+1)); done
kill -TERM \$APID 2>/dev/null
i=0
while kill -0 \$APID 2>/dev/null && [ \$i -lt 30 ]; do sleep 1; i=\$((i+1)); done
kill -0 \$APID 2>/dev/null && { echo "agent ignored SIGTERM for 30s: killed"; kill -KILL \$APID; }
wait \$APID; echo "agent-exit \$?"
cat /tmp/agent.out
mark AGENT-END
finish
EOF
chmod +x "$ROOT/init"

boot_and_check() { # MODE: v2 or v1
MODE="$1"
case "$MODE" in
    v2) CG_ROOT=/sys/fs/cgroup; CG_LINE_RE='0::' ;;
    v1) CG_ROOT=/sys/fs/cgroup/cpuset; CG_LINE_RE='[0-9]+:cpuset:' ;;
    *) die "NMM_E2E_CGROUPS: unknown cgroup mode $MODE (v2 or v1)" ;;
esac
echo "$MODE" >"$ROOT/e2e/mode"
rm -rf "$ROOT/var/lib/nmm"/* 2>/dev/null || true
echo
log "=== cgroup $MODE ==="
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initramfs.cpio.gz"
log "initramfs $(du -h "$WORK/initramfs.cpio.gz" | cut -f1), kernel $KERNEL"

# ---------------------------------------------------------------- qemu
QEMU=(qemu-system-x86_64 -machine q35 "${ACCEL[@]}" -cpu max -smp 6,sockets=3,cores=2,threads=1
      -m $((NODES * NODE_MIB))M -nographic -no-reboot -nodefaults -serial stdio
      -kernel "$KERNEL" -initrd "$WORK/initramfs.cpio.gz"
      -append "console=ttyS0 quiet loglevel=1 panic=-1")
for n in $(seq 0 $((NODES - 1))); do
    QEMU+=(-object "memory-backend-ram,id=m$n,size=${NODE_MIB}M")
    if [ -n "${NODE_CPUS[$n]}" ]; then
        QEMU+=(-numa "node,nodeid=$n,cpus=${NODE_CPUS[$n]},memdev=m$n")
    else
        QEMU+=(-numa "node,nodeid=$n,memdev=m$n")
    fi
done
for i in $(seq 0 $((NODES - 1))); do
    read -r -a row <<<"${DIST[$i]}"
    for j in $(seq $((i + 1)) $((NODES - 1))); do
        QEMU+=(-numa "dist,src=$i,dst=$j,val=${row[$j]}")
    done
done
log "booting: ${QEMU[*]}"
# A guest that never reaches our init (no marker on the console) is a stalled emulated
# boot, seen once on a loaded shared VM with nothing past the firmware's "Booting from
# ROM": it is booted once more. A guest that started and then hung is a failure.
for attempt in 1 2; do
    T1=$(date +%s)
    set +e
    timeout --foreground -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1 \
        | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b[A-Za-z]//g; s/\r//g' >"$WORK/console.log"
    QRC=${PIPESTATUS[0]}
    set -e
    BOOT_S=$(($(date +%s) - T1))
    if [ "$QRC" = 124 ] && [ "$attempt" = 1 ] && ! grep -q '^=== NMM-E2E ' "$WORK/console.log"; then
        cp "$WORK/console.log" "/tmp/nmm-e2e-console-$MODE-stalled.log"
        log "qemu timed out after ${BOOT_S}s before the guest's init printed anything (console: /tmp/nmm-e2e-console-$MODE-stalled.log); booting once more"
        continue
    fi
    break
done
cp "$WORK/console.log" "/tmp/nmm-e2e-console-$MODE.log"
log "qemu exited ($QRC) after ${BOOT_S}s; console log: /tmp/nmm-e2e-console-$MODE.log"
[ "$QRC" = 124 ] && die "qemu timed out after ${TIMEOUT}s (see /tmp/nmm-e2e-console-$MODE.log)"

# ---------------------------------------------------------------- checks
CON="$WORK/console.log"
section() { sed -n "/^=== NMM-E2E $1 ===\$/,/^=== NMM-E2E $2 ===\$/p" "$CON" | sed '1d;$d'; }
check() { # description, then a command; on failure the command's output is shown
    local what="$1" out; shift
    if out=$("$@" 2>&1); then
        PASSES=$((PASSES + 1)); echo "  ok    $what"
    else
        FAILS=$((FAILS + 1)); echo "  FAIL  $what"
        [ -n "$out" ] && sed 's/^/          /' <<<"$out"
    fi
    return 0
}
eq() { [ "$1" = "$2" ] || { echo "got [$1], want [$2]"; return 1; }; }
eqv() { local want="$1" got; shift; got=$("$@") || true; eq "$got" "$want"; }
grep -q '=== NMM-E2E BOOTED ===$' "$CON" || { tail -n 40 "$CON"; die "the guest did not reach /init"; }

section NODE-JSON-BEGIN NODE-JSON-END | grep -v '^nmm-node-exit' >"$WORK/machine.json" || true
echo "nmm node (guest):"
section NODE-JSON-END ENFORCE-BEGIN | sed 's/^/  /'
echo "checks (cgroup $MODE):"
check "the guest mounted cgroup $MODE (cpuset at $CG_ROOT)" grep -qx "cgroup-mode $MODE root $CG_ROOT" "$CON"
check "nmm node -o json exits 0" grep -q '^nmm-node-exit 0$' "$CON"
check "nmm node output is JSON" jq -e . "$WORK/machine.json"
J() { jq -r "$@" "$WORK/machine.json" 2>/dev/null; }
check "$NODES NUMA nodes" eqv "$(seq -s' ' 0 $((NODES - 1)))" J '[.numaNodes[].id] | map(tostring) | join(" ")'
for n in $(seq 0 $((NODES - 1))); do
    check "node $n cpus [${NODE_CPUS[$n]}]" eqv "${NODE_CPUS[$n]}" J ".numaNodes[$n].cpus"
    check "node $n distances [${DIST[$n]}]" eqv "${DIST[$n]}" J ".distances[$n] | map(tostring) | join(\" \")"
    check "node $n hugepages-2Mi = $HP_PAGES pages" \
        eqv "$((HP_PAGES * 2 * 1024 * 1024))" J ".numaNodes[$n].hugepages[\"2Mi\"]"
    mem=$(J ".numaNodes[$n].memory")
    given=$((NODE_MIB * 1024 * 1024))
    kernel_kb=$(sed -n "s/^meminfo $n //p" "$CON")
    check "node $n memory = the guest kernel's MemTotal (${kernel_kb:-?} kB)" \
        eq "${mem:-none}" "$((${kernel_kb:-0} * 1024))"
    # MemTotal excludes what firmware and the kernel keep at boot (kernel image, memmap,
    # swiotlb, ACPI tables): allow up to 15% below the size qemu gave the node, nothing above.
    check "node $n memory $((${mem:-0} >> 10)) KiB: at most ${NODE_MIB} MiB and at least 85% of it" \
        test "${mem:-0}" -le "$given" -a "${mem:-0}" -ge $((given * 85 / 100))
done
check "node 3 has no CPUs" eqv "" J '.numaNodes[3].cpus'
check "6 CPUs, 3 sockets, 2 cores each" eqv "0:0:0 1:0:0 2:1:1 3:1:1 4:2:2 5:2:2" \
    J '[.cpus[] | "\(.id):\(.socket):\(.numa)"] | join(" ")'

echo "enforce (guest):"
section ENFORCE-BEGIN ENFORCE-END | sed 's/^/  /'
check "enforce admitted the 4 pods and wrote both cgroups" grep -q '^enforce-exit 0$' "$CON"
# Pages of one mapping per node: "N2=16384" -> "2=16384", space separated.
pages_by_node() { grep "^0*$2 " "$1" | grep -o ' N[0-9]*=[0-9]*' | tr -d ' N' | tr '\n' ' ' | sed 's/ $//'; }
ANON_PAGES=$((ANON_MIB * 256))
check_pod() { # pod, expected node, expected cpus (regex)
    local pod="$1" node="$2" cpus_re="$3" line mems cpus alloc anon huge
    line=$(grep "^cpuset uid-$pod app " "$CON" || true)
    mems=$(sed -n 's/.* mems=\([^ ]*\).*/\1/p' <<<"$line")
    cpus=$(sed -n 's/.* cpus=\([^ ]*\).*/\1/p' <<<"$line")
    echo "pod $pod: cpus=$cpus mems=$mems"
    check "$pod: memory placed on node $node" eq "$mems" "$node"
    check "$pod: cpus $cpus match /$cpus_re/" grep -qxE "$cpus_re" <<<"$cpus"
    check "$pod: cgroup cpuset.mems = $mems" grep -qx "cgroup $pod cpuset.mems $mems" "$CON"
    check "$pod: cgroup cpuset.cpus = $cpus" grep -qx "cgroup $pod cpuset.cpus $cpus" "$CON"
    section "ALLOC-$pod-BEGIN" "ALLOC-$pod-END" >"$WORK/alloc-$pod"
    section "NUMA-MAPS-$pod-BEGIN" "NUMA-MAPS-$pod-END" >"$WORK/numa_maps-$pod"
    grep -v '^=== \|^[0-9a-f]* ' "$WORK/alloc-$pod" | sed 's/^/  /'
    grep -E '^[0-9a-f]+ .*(anon=[0-9]{3}|huge)' "$WORK/numa_maps-$pod" | sed 's/^/  numa_maps: /'
    alloc=$(grep '^alloc pid=' "$WORK/alloc-$pod" || true)
    anon=$(sed -n 's/.* anon=\([0-9a-f]*\) .*/\1/p' <<<"$alloc")
    huge=$(sed -n 's/.* huge=\([0-9a-f]*\) .*/\1/p' <<<"$alloc")
    check "$pod: helper ran in kubepods/poduid-$pod/app" \
        grep -qxE "cgroup-of-pid $CG_LINE_RE/kubepods/poduid-$pod/app" "$WORK/alloc-$pod"
    check "$pod: Mems_allowed_list = $mems" grep -qE "^Mems_allowed_list:[[:space:]]+$mems\$" "$WORK/alloc-$pod"
    check "$pod: Cpus_allowed_list = $cpus" grep -qE "^Cpus_allowed_list:[[:space:]]+$cpus\$" "$WORK/alloc-$pod"
    check "$pod: anonymous ${ANON_MIB} MiB: all $ANON_PAGES pages on node $node" \
        eqv "$node=$ANON_PAGES" pages_by_node "$WORK/numa_maps-$pod" "${anon:-none}"
    check "$pod: hugetlb ${HUGE_MIB} MiB: all $((HUGE_MIB / 2)) 2 MiB pages on node $node" \
        eqv "$node=$((HUGE_MIB / 2))" pages_by_node "$WORK/numa_maps-$pod" "${huge:-none}"
}
echo "allocations (guest):"
# app: an exclusive CPU of node 2, the only node with free CPUs left.
check_pod app 2 '4|5'
# mem3: a fractional CPU (the shared pool, CPUs of nodes 0 and 2) and memory that only
# CPU-less node 3 still has: its pages can only be there through cpuset.mems.
check_pod mem3 3 '0,5|0,4'

echo "nmm agent restart from the enforce example's checkpoints (guest):"
section AGENT-BEGIN AGENT-END | sed 's/^/  /'
check "nmm agent restores the 4 pods and stops cleanly" \
    bash -c "grep -qE ' INFO [^ ]+: restored 4 pods from /var/lib/nmm$' '$CON' && grep -q '^agent-exit 0$' '$CON'"
check "nmm agent logs with RFC 3339 timestamps" \
    grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z +INFO ' "$CON"
check "nmm agent found the cgroup $MODE cpuset hierarchy in /proc/self/mountinfo" \
    grep -qE "cpusets are written under $CG_ROOT \(cgroup $MODE\)$" "$CON"

}

FAILS=0
PASSES=0
BOOTS=""
for mode in ${NMM_E2E_CGROUPS:-v2 v1}; do
    boot_and_check "$mode"
    BOOTS="$BOOTS $mode:${BOOT_S}s"
done

TOTAL=$(($(date +%s) - T0))
echo
if [ "$FAILS" = 0 ]; then
    echo "PASS: qemu NUMA end-to-end test: $PASSES checks (guests${BOOTS}, total ${TOTAL}s)"
    echo "e2e: $PASSES passed, 0 failed"
else
    echo "FAIL: qemu NUMA end-to-end test: $FAILS of $((PASSES + FAILS)) checks failed (guests${BOOTS}, total ${TOTAL}s; consoles: /tmp/nmm-e2e-console-*.log)"
    echo "e2e: $PASSES passed, $FAILS failed"
    exit 1
fi
