"""What this machine's CPU offers, read from /proc/cpuinfo (no TensorFlow: the demo and the
study ask before any graph exists)."""
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = "/proc/cpuinfo"


def cpu_bf16_flags(cpuinfo=CPUINFO):
    """The native-bf16 flags (``avx512_bf16``, ``amx_bf16``) of this CPU, from /proc/cpuinfo's
    first ``flags`` line; an empty tuple when it has none (or there is no /proc/cpuinfo)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in NATIVE_BF16_FLAGS if flag in flags)
    except OSError:
        pass
    return ()
