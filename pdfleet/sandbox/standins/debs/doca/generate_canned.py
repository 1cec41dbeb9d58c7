"""Writes the canned RDMA outputs in canned/ (run by hand: python3 generate_canned.py; not part of any package; a test
checks that canned/ is what this writes).

SYNTHESISED, NOT CAPTURED: the reference node had no RDMA NICs. These are what the real tools print for the host
this file describes, following the tools' own print statements:
  ibv_devinfo [-v]   rdma-core v58 libibverbs/examples/devinfo.c (DOCA-OFED 3.1 ships rdma-core 2507mlnx58)
  ibstat             rdma-core v58 infiniband-diags/ibstat.c
  ibdev2netdev [-v]  Mellanox/mlnx-tools ofed_scripts/ibdev2netdev
  show_gids          Mellanox/mlnx-tools sbin/show_gids
The host: eight ConnectX-7 (MT4129, MCX75310AAS-NEAT single-port OSFP) HCAs mlx5_0..mlx5_7, one per GPU, each
port ACTIVE with Ethernet link layer (RoCE) at 400 Gb/s (4X NDR lanes), MTU 4096, and the usual four GIDs: 0/1 the
link-local IPv6 address (RoCE v1 / v2), 2/3 the IPv4-mapped address (RoCE v1 / v2); GID index 3 is the RoCE v2
IPv4 GID that NCCL_IB_GID_INDEX / NVSHMEM_IB_GID_INDEX / MC_GID_INDEX name. Rail i has address 10.100.i.11.
Device attributes (-v) are values a ConnectX-7 reports with an mlx5 driver of that generation.
"""

import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
PCI = ["1a", "3c", "4d", "5d", "9b", "bb", "cb", "db"]
FW = "28.46.1006"
BOARD_ID = "MT_0000000838"
PART = "MCX75310AAS-NEAT"
DESCRIPTION = (
    "NVIDIA ConnectX-7 HHHL Adapter Card, 400GbE / NDR IB (default mode), Single-port OSFP, PCIe 5.0 x16, "
    "Crypto Disabled, Secure Boot Enabled"
)
DEVICE_CAP_FLAGS = [
    (1, "BAD_PKEY_CNTR"), (2, "BAD_QKEY_CNTR"), (4, "AUTO_PATH_MIG"), (5, "CHANGE_PHY_PORT"),
    (10, "PORT_ACTIVE_EVENT"), (11, "SYS_IMAGE_GUID"), (12, "RC_RNR_NAK_GEN"), (17, "MEM_WINDOW"),
    (18, "UD_IP_CSUM"), (20, "XRC"), (21, "MEM_MGT_EXTENSIONS"), (24, "MEM_WINDOW_TYPE_2B"), (26, "RAW_IP_CSUM"),
    (29, "MANAGED_FLOW_STEERING"),
]  # fmt: skip


def hca(i):
    suffix = hashlib.sha256(f"pdfleet-rdma-{i}".encode()).hexdigest()[:6]
    mac = "946dae" + suffix
    node_guid = "946dae0300" + suffix
    port_guid = "966daefffe" + suffix  # EUI-64 of the MAC (universal/local bit flipped)
    ll_tail = [port_guid[k : k + 4] for k in range(0, 16, 4)]
    ipv4 = f"10.100.{i}.11"
    ipv4_hex = "".join(f"{int(x):02x}" for x in ipv4.split("."))
    return {
        "name": f"mlx5_{i}",
        "pci": f"0000:{PCI[i]}:00.0",
        "netdev": f"enp{int(PCI[i], 16)}s0np0",
        "mac": mac,
        "node_guid": ":".join(node_guid[k : k + 4] for k in range(0, 16, 4)),
        "node_guid_hex": node_guid,
        "port_guid_hex": port_guid,
        "gid_ll": "fe80:0000:0000:0000:" + ":".join(ll_tail),
        "gid_ll_v2": "fe80::" + ":".join(t.lstrip("0") or "0" for t in ll_tail),
        "gid_v4": f"0000:0000:0000:0000:0000:ffff:{ipv4_hex[:4]}:{ipv4_hex[4:]}",
        "gid_v4_v2": f"::ffff:{ipv4}",
        "ipv4": ipv4,
    }


def devinfo(h, verbose):
    out = [
        f"hca_id:\t{h['name']}",
        "\ttransport:\t\t\tInfiniBand (0)",
        f"\tfw_ver:\t\t\t\t{FW}",
        f"\tnode_guid:\t\t\t{h['node_guid']}",
        f"\tsys_image_guid:\t\t\t{h['node_guid']}",
        "\tvendor_id:\t\t\t0x02c9",
        "\tvendor_part_id:\t\t\t4129",
        "\thw_ver:\t\t\t\t0x0",
        f"\tboard_id:\t\t\t{BOARD_ID}",
        "\tphys_port_cnt:\t\t\t1",
    ]
    if verbose:
        flags = sum(1 << bit for bit, _ in DEVICE_CAP_FLAGS)
        flags_ex = flags | (1 << 34) | (1 << 36)
        out += [
            "\tmax_mr_size:\t\t\t0xffffffffffffffff",
            "\tpage_size_cap:\t\t\t0xfffffffffffff000",
            "\tmax_qp:\t\t\t\t131072",
            "\tmax_qp_wr:\t\t\t32768",
            f"\tdevice_cap_flags:\t\t0x{flags:08x}",
        ]
        out += [f"\t\t\t\t\t{name}" for _, name in DEVICE_CAP_FLAGS]
        out += [
            "\tmax_sge:\t\t\t30",
            "\tmax_sge_rd:\t\t\t30",
            "\tmax_cq:\t\t\t\t16777216",
            "\tmax_cqe:\t\t\t4194303",
            "\tmax_mr:\t\t\t\t16777216",
            "\tmax_pd:\t\t\t\t8388608",
            "\tmax_qp_rd_atom:\t\t\t16",
            "\tmax_ee_rd_atom:\t\t\t0",
            "\tmax_res_rd_atom:\t\t2097152",
            "\tmax_qp_init_rd_atom:\t\t16",
            "\tmax_ee_init_rd_atom:\t\t0",
            "\tatomic_cap:\t\t\tATOMIC_HCA (1)",
            "\tmax_ee:\t\t\t\t0",
            "\tmax_rdd:\t\t\t0",
            "\tmax_mw:\t\t\t\t16777216",
            "\tmax_raw_ipv6_qp:\t\t0",
            "\tmax_raw_ethy_qp:\t\t0",
            "\tmax_mcast_grp:\t\t\t2097152",
            "\tmax_mcast_qp_attach:\t\t240",
            "\tmax_total_mcast_qp_attach:\t503316480",
            "\tmax_ah:\t\t\t\t2147483647",
            "\tmax_fmr:\t\t\t0",
            "\tmax_srq:\t\t\t8388608",
            "\tmax_srq_wr:\t\t\t32767",
            "\tmax_srq_sge:\t\t\t31",
            "\tmax_pkeys:\t\t\t128",
            "\tlocal_ca_ack_delay:\t\t16",
            "\tgeneral_odp_caps:",
            "\t\t\t\t\tODP_SUPPORT",
            "\t\t\t\t\tODP_SUPPORT_IMPLICIT",
            "\trc_odp_caps:",
            "\t\t\t\t\tSUPPORT_SEND",
            "\t\t\t\t\tSUPPORT_RECV",
            "\t\t\t\t\tSUPPORT_WRITE",
            "\t\t\t\t\tSUPPORT_READ",
            "\t\t\t\t\tSUPPORT_ATOMIC",
            "\t\t\t\t\tSUPPORT_SRQ",
            "\tuc_odp_caps:",
            "\t\t\t\t\tNO SUPPORT",
            "\tud_odp_caps:",
            "\t\t\t\t\tSUPPORT_SEND",
            "\txrc_odp_caps:",
            "\t\t\t\t\tSUPPORT_SEND",
            "\t\t\t\t\tSUPPORT_WRITE",
            "\t\t\t\t\tSUPPORT_READ",
            "\t\t\t\t\tSUPPORT_ATOMIC",
            "\t\t\t\t\tSUPPORT_SRQ",
            "\tcompletion timestamp_mask:\t\t\t0x7fffffffffffffff",
            "\thca_core_clock:\t\t\t156250kHZ",
            "\traw packet caps:",
            "\t\t\t\t\tC-VLAN stripping offload",
            "\t\t\t\t\tScatter FCS offload",
            "\t\t\t\t\tIP csum offload",
            "\t\t\t\t\tDelay drop",
            f"\tdevice_cap_flags_ex:\t\t0x{flags_ex:X}",
            "\t\t\t\t\tRAW_SCATTER_FCS",
            "\t\t\t\t\tPCI_WRITE_END_PADDING",
            "\ttso_caps:",
            "\t\tmax_tso:\t\t\t262144",
            "\t\tsupported_qp:",
            "\t\t\t\t\tSUPPORT_RAW_PACKET",
            "\trss_caps:",
            "\t\tmax_rwq_indirection_tables:\t\t\t1048576",
            "\t\tmax_rwq_indirection_table_size:\t\t\t2048",
            "\t\trx_hash_function:\t\t\t\t0x1",
            "\t\trx_hash_fields_mask:\t\t\t\t0x800000FF",
            "\t\tsupported_qp:",
            "\t\t\t\t\tSUPPORT_RAW_PACKET",
            "\tmax_wq_type_rq:\t\t\t8388608",
            "\tpacket_pacing_caps:",
            "\t\tqp_rate_limit_min:\t1kbps",
            "\t\tqp_rate_limit_max:\t400000000kbps",
            "\t\tsupported_qp:",
            "\t\t\t\t\tSUPPORT_RAW_PACKET",
            "\tmax_rndv_hdr_size:\t\t64",
            "\tmax_num_tags:\t\t\t127",
            "\tmax_ops:\t\t\t32768",
            "\tmax_sge:\t\t\t1",
            "\tflags:",
            "\t\t\t\t\tIBV_TM_CAP_RC",
            "",
            "\tcq moderation caps:",
            "\t\tmax_cq_count:\t65535",
            "\t\tmax_cq_period:\t4095 us",
            "",
            "\tmaximum available device memory:\t131072Bytes",
            "",
            "\tnum_comp_vectors:\t\t63",
        ]
    out += [
        "\t\tport:\t1",
        "\t\t\tstate:\t\t\tPORT_ACTIVE (4)",
        "\t\t\tmax_mtu:\t\t4096 (5)",
        "\t\t\tactive_mtu:\t\t4096 (5)",
        "\t\t\tsm_lid:\t\t\t0",
        "\t\t\tport_lid:\t\t0",
        "\t\t\tport_lmc:\t\t0x00",
        "\t\t\tlink_layer:\t\tEthernet",
    ]
    if verbose:
        out += [
            "\t\t\tmax_msg_sz:\t\t0x40000000",
            "\t\t\tport_cap_flags:\t\t0x04010000",
            "\t\t\tport_cap_flags2:\t0x0000",
            "\t\t\tmax_vl_num:\t\tinvalid value (0)",
            "\t\t\tbad_pkey_cntr:\t\t0x0",
            "\t\t\tqkey_viol_cntr:\t\t0x0",
            "\t\t\tsm_sl:\t\t\t0",
            "\t\t\tpkey_tbl_len:\t\t1",
            "\t\t\tgid_tbl_len:\t\t255",
            "\t\t\tsubnet_timeout:\t\t0",
            "\t\t\tinit_type_reply:\t0",
            "\t\t\tactive_width:\t\t4X (2)",
            "\t\t\tactive_speed:\t\t100.0 Gbps (128)",
            "\t\t\tphys_state:\t\tLINK_UP (5)",
            f"\t\t\tGID[  0]:\t\t{h['gid_ll']}, RoCE v1",
            f"\t\t\tGID[  1]:\t\t{h['gid_ll_v2']}, RoCE v2",
            f"\t\t\tGID[  2]:\t\t{h['gid_v4']}, RoCE v1",
            f"\t\t\tGID[  3]:\t\t{h['gid_v4_v2']}, RoCE v2",
        ]
    out.append("")
    return "\n".join(out) + "\n"


def ibstat(h):
    return (
        f"CA '{h['name']}'\n"
        "\tCA type: MT4129\n"
        "\tNumber of ports: 1\n"
        f"\tFirmware version: {FW}\n"
        "\tHardware version: 0x0\n"
        f"\tNode GUID: 0x{h['node_guid_hex']}\n"
        f"\tSystem image GUID: 0x{h['node_guid_hex']}\n"
        "\tPort 1:\n"
        "\t\tState: Active\n"
        "\t\tPhysical state: LinkUp\n"
        "\t\tRate: 400\n"
        "\t\tBase lid: 0\n"
        "\t\tLMC: 0\n"
        "\t\tSM lid: 0\n"
        "\t\tCapability mask: 0x00010000\n"
        f"\t\tPort GUID: 0x{h['port_guid_hex']}\n"
        "\t\tLink layer: Ethernet\n"
    )


def show_gids(hcas):
    lines = [
        "DEV\tPORT\tINDEX\tGID\t\t\t\t\tIPv4  \t\tVER\tDEV",
        "---\t----\t-----\t---\t\t\t\t\t------------  \t---\t---",
    ]
    for h in hcas:
        d, n = h["name"], h["netdev"]
        lines += [
            f"{d}\t1\t0\t{h['gid_ll']}\t\t\tv1\t{n}",
            f"{d}\t1\t1\t{h['gid_ll']}\t\t\tv2\t{n}",
            f"{d}\t1\t2\t{h['gid_v4']}\t{h['ipv4']}  \tv1\t{n}",
            f"{d}\t1\t3\t{h['gid_v4']}\t{h['ipv4']}  \tv2\t{n}",
        ]
    lines.append(f"n_gids_found={4 * len(hcas)}")
    return "\n".join(lines) + "\n"


def main(out=HERE / "canned"):
    hcas = [hca(i) for i in range(8)]
    out = Path(out)
    out.mkdir(exist_ok=True)
    (out / "ibv_devinfo.txt").write_text("".join(devinfo(h, False) for h in hcas))
    (out / "ibv_devinfo-v.txt").write_text("".join(devinfo(h, True) for h in hcas))
    (out / "ibstat.txt").write_text("".join(ibstat(h) for h in hcas))
    (out / "ibdev2netdev.txt").write_text("".join(f"{h['name']} port 1 ==> {h['netdev']} (Up)\n" for h in hcas))
    (out / "ibdev2netdev-v.txt").write_text(
        "".join(
            f"{h['pci']} {h['name']} (MT4129 - {PART}) {DESCRIPTION} fw {FW} port 1 (ACTIVE) ==> {h['netdev']} (Up)\n"
            for h in hcas
        )
    )
    (out / "show_gids.txt").write_text(show_gids(hcas))
    (out / "netdevs.txt").write_text(
        "# netdev MAC IPv4 HCA: the RoCE interfaces the canned outputs describe (for a sandbox that wants them)\n"
        + "".join(
            f"{h['netdev']} {':'.join(h['mac'][k : k + 2] for k in range(0, 12, 2))} {h['ipv4']}/24 {h['name']}\n"
            for h in hcas
        )
    )


if __name__ == "__main__":
    main()
