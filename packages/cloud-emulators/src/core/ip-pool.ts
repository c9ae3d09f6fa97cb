/**
 * Hands out unique fake addresses: IPv4 from 100.64.0.0/10 (shared address space, never routed
 * publicly), a /64 per server from 2001:db8::/32 (documentation range).
 */
export class IpPool {
  private next = 1;

  constructor(private readonly secondOctet: number) {}

  allocate(): { ipv4: string; ipv6Network: string; ipv6: string; privateIp: string } {
    const n = this.next++;
    const third = (n >> 8) & 0xff;
    const fourth = n & 0xff;
    const hex = n.toString(16);
    return {
      ipv4: `100.${this.secondOctet}.${third}.${fourth}`,
      ipv6Network: `2001:db8:${this.secondOctet.toString(16)}:${hex}::`,
      ipv6: `2001:db8:${this.secondOctet.toString(16)}:${hex}::1`,
      privateIp: `10.${this.secondOctet - 64}.${third}.${fourth}`,
    };
  }
}
