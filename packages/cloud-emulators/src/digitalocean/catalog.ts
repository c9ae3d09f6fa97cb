/** A small, realistic slice of DigitalOcean's public catalogue (prices as published in 2025). */
export interface DoSize {
  slug: string;
  memory: number;
  vcpus: number;
  disk: number;
  transfer: number;
  price_monthly: number;
  price_hourly: number;
  description: string;
}

export const regions = [
  { slug: 'nyc3', name: 'New York 3' },
  { slug: 'sfo3', name: 'San Francisco 3' },
  { slug: 'ams3', name: 'Amsterdam 3' },
  { slug: 'fra1', name: 'Frankfurt 1' },
  { slug: 'lon1', name: 'London 1' },
  { slug: 'sgp1', name: 'Singapore 1' },
] as const;

export const regionFeatures = ['backups', 'ipv6', 'metadata', 'install_agent', 'storage', 'image_transfer'];

export const sizes: DoSize[] = [
  { slug: 's-1vcpu-1gb', memory: 1024, vcpus: 1, disk: 25, transfer: 1, price_monthly: 6, price_hourly: 0.00893, description: 'Basic' },
  { slug: 's-1vcpu-2gb', memory: 2048, vcpus: 1, disk: 50, transfer: 2, price_monthly: 12, price_hourly: 0.01786, description: 'Basic' },
  { slug: 's-2vcpu-2gb', memory: 2048, vcpus: 2, disk: 60, transfer: 3, price_monthly: 18, price_hourly: 0.02679, description: 'Basic' },
  { slug: 's-2vcpu-4gb', memory: 4096, vcpus: 2, disk: 80, transfer: 4, price_monthly: 24, price_hourly: 0.03571, description: 'Basic' },
  { slug: 's-4vcpu-8gb', memory: 8192, vcpus: 4, disk: 160, transfer: 5, price_monthly: 48, price_hourly: 0.07143, description: 'Basic' },
  {
    slug: 'g-2vcpu-8gb',
    memory: 8192,
    vcpus: 2,
    disk: 25,
    transfer: 4,
    price_monthly: 63,
    price_hourly: 0.09375,
    description: 'General Purpose',
  },
];

export interface DoImage {
  id: number;
  slug: string | null;
  name: string;
  distribution: 'Ubuntu' | 'Debian' | 'Rocky Linux' | 'Fedora' | 'Unknown';
  type: 'base' | 'snapshot';
  min_disk_size: number;
  size_gigabytes: number;
  created_at: string;
  description: string;
}

export const distributionImages: DoImage[] = [
  {
    id: 160232537,
    slug: 'ubuntu-24-04-x64',
    name: '24.04 (LTS) x64',
    distribution: 'Ubuntu',
    type: 'base',
    min_disk_size: 7,
    size_gigabytes: 2.34,
    created_at: '2024-08-01T14:00:00Z',
    description: 'Ubuntu 24.04 (LTS) x64',
  },
  {
    id: 129211873,
    slug: 'ubuntu-22-04-x64',
    name: '22.04 (LTS) x64',
    distribution: 'Ubuntu',
    type: 'base',
    min_disk_size: 7,
    size_gigabytes: 2.3,
    created_at: '2023-04-26T10:00:00Z',
    description: 'Ubuntu 22.04 (LTS) x64',
  },
  {
    id: 139377357,
    slug: 'debian-12-x64',
    name: '12 x64',
    distribution: 'Debian',
    type: 'base',
    min_disk_size: 7,
    size_gigabytes: 1.26,
    created_at: '2023-08-15T09:00:00Z',
    description: 'Debian 12 x64',
  },
  {
    id: 147413564,
    slug: 'rockylinux-9-x64',
    name: '9 x64',
    distribution: 'Rocky Linux',
    type: 'base',
    min_disk_size: 10,
    size_gigabytes: 1.8,
    created_at: '2024-01-10T12:00:00Z',
    description: 'Rocky Linux 9 x64',
  },
  {
    id: 158012345,
    slug: 'fedora-40-x64',
    name: '40 x64',
    distribution: 'Fedora',
    type: 'base',
    min_disk_size: 7,
    size_gigabytes: 1.5,
    created_at: '2024-05-02T12:00:00Z',
    description: 'Fedora 40 x64',
  },
];
