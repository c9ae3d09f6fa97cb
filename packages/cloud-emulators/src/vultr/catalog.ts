/** A slice of Vultr's public catalogue (USD prices as published in 2025). */
export const vultrRegions = [
  { id: 'ewr', city: 'New Jersey', country: 'US', continent: 'North America', options: ['ddos_protection', 'block_storage_storage_opt'] },
  { id: 'ord', city: 'Chicago', country: 'US', continent: 'North America', options: ['ddos_protection'] },
  { id: 'fra', city: 'Frankfurt', country: 'DE', continent: 'Europe', options: ['ddos_protection', 'block_storage_high_perf'] },
  { id: 'ams', city: 'Amsterdam', country: 'NL', continent: 'Europe', options: ['ddos_protection'] },
  { id: 'lhr', city: 'London', country: 'GB', continent: 'Europe', options: ['ddos_protection'] },
  { id: 'sgp', city: 'Singapore', country: 'SG', continent: 'Asia', options: ['ddos_protection'] },
];

export interface VultrPlan {
  id: string;
  vcpu_count: number;
  ram: number;
  disk: number;
  bandwidth: number;
  monthly_cost: number;
  type: string;
}

export const plans: VultrPlan[] = [
  { id: 'vc2-1c-1gb', vcpu_count: 1, ram: 1024, disk: 25, bandwidth: 1024, monthly_cost: 5, type: 'vc2' },
  { id: 'vc2-1c-2gb', vcpu_count: 1, ram: 2048, disk: 55, bandwidth: 2048, monthly_cost: 10, type: 'vc2' },
  { id: 'vc2-2c-4gb', vcpu_count: 2, ram: 4096, disk: 80, bandwidth: 3072, monthly_cost: 20, type: 'vc2' },
  { id: 'vc2-4c-8gb', vcpu_count: 4, ram: 8192, disk: 160, bandwidth: 4096, monthly_cost: 40, type: 'vc2' },
  { id: 'vhf-1c-1gb', vcpu_count: 1, ram: 1024, disk: 32, bandwidth: 1024, monthly_cost: 6, type: 'vhf' },
  { id: 'vhf-2c-4gb', vcpu_count: 2, ram: 4096, disk: 128, bandwidth: 3072, monthly_cost: 24, type: 'vhf' },
];

export const operatingSystems = [
  { id: 2284, name: 'Ubuntu 24.04 LTS x64', arch: 'x64', family: 'ubuntu' },
  { id: 1743, name: 'Ubuntu 22.04 LTS x64', arch: 'x64', family: 'ubuntu' },
  { id: 2136, name: 'Debian 12 x64 (bookworm)', arch: 'x64', family: 'debian' },
  { id: 1869, name: 'Rocky Linux 9 x64', arch: 'x64', family: 'rockylinux' },
  { id: 2157, name: 'Fedora 40 x64', arch: 'x64', family: 'fedora' },
];
