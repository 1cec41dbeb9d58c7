#!/bin/sh
# pdfleet sandbox stand-in for /usr/bin/nvidia-fabricmanager-start.sh (package nvidia-fabricmanager-580): the
# wrapper the unit runs. An HGX H200 is an NVLink4 (pre-NVL5) system: start runs nv-fabricmanager alone, no nvlsm.
root=${PDFLEET_STANDIN_ROOT:-/}
root=${root%/}
mode=
config=/usr/share/nvidia/nvswitch/fabricmanager.cfg
while [ $# -gt 0 ]; do
    case $1 in
        --mode) mode=$2; shift 2 ;;
        --mode=*) mode=${1#--mode=}; shift ;;
        --fm-config-file) config=$2; shift 2 ;;
        --fm-config-file=*) config=${1#--fm-config-file=}; shift ;;
        --nvlsm-config-file) shift 2 ;;
        --nvlsm-config-file=*) shift ;;
        *) echo "Unknown option: $1" >&2; exit 1 ;;
    esac
done
pidfile=$root/run/nvidia-fabricmanager/nv-fabricmanager.pid
case $mode in
    precheck)
        exit 0 ;;
    start)
        echo "Detected Pre-NVL5 system"
        exec "$root/usr/bin/nv-fabricmanager" -c "$config" ;;
    stop)
        if [ -f "$pidfile" ]; then
            pid=$(cat "$pidfile")
            kill "$pid" 2>/dev/null
            i=0
            # wait until it is gone (or a zombie nobody reaped yet), at most 5 s
            while [ $i -lt 50 ]; do
                state=$(sed 's/.*) //; s/ .*//' "/proc/$pid/stat" 2>/dev/null)
                if [ -z "$state" ] || [ "$state" = Z ]; then break; fi
                sleep 0.1
                i=$((i + 1))
            done
        fi
        exit 0 ;;
    *)
        echo "Usage: $0 --mode <precheck|start|stop> [--fm-config-file FILE] [--nvlsm-config-file FILE]" >&2
        exit 1 ;;
esac
