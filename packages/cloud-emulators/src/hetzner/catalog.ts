/** A slice of Hetzner Cloud's public catalogue (EUR prices as published in 2025, net; gross adds 19 % VAT). */
export interface HetznerLocation {
  id: number;
  name: string;
  description: string;
  country: string;
  city: string;
  latitude: number;
  longitude: number;
  network_zone: string;
}

export const locations: HetznerLocation[] = [
  {
    id: 1,
    name: 'fsn1',
    description: 'Falkenstein DC Park 1',
    country: 'DE',
    city: 'Falkenstein',
    latitude: 50.47612,
    longitude: 12.370071,
    network_zone: 'eu-central',
  },
  {
    id: 2,
    name: 'nbg1',
    description: 'Nuremberg DC Park 1',
    country: 'DE',
    city: 'Nuremberg',
    latitude: 49.452102,
    longitude: 11.076665,
    network_zone: 'eu-central',
  },
  {
    id: 3,
    name: 'hel1',
    description: 'Helsinki DC Park 1',
    country: 'FI',
    city: 'Helsinki',
    latitude: 60.169855,
    longitude: 24.938379,
    network_zone: 'eu-central',
  },
  {
    id: 4,
    name: 'ash',
    description: 'Ashburn, VA',
    country: 'US',
    city: 'Ashburn, VA',
    latitude: 39.045821,
    longitude: -77.487073,
    network_zone: 'us-east',
  },
  {
    id: 5,
    name: 'hil',
    description: 'Hillsboro, OR',
    country: 'US',
    city: 'Hillsboro, OR',
    latitude: 45.54222,
    longitude: -122.951924,
    network_zone: 'us-west',
  },
  {
    id: 6,
    name: 'sin',
    description: 'Singapore',
    country: 'SG',
    city: 'Singapore',
    latitude: 1.283333,
    longitude: 103.833333,
    network_zone: 'ap-southeast',
  },
];

export interface HetznerServerType {
  id: number;
  name: string;
  description: string;
  cores: number;
  memory: number;
  disk: number;
  cpu_type: 'shared' | 'dedicated';
  architecture: 'x86' | 'arm';
  /** Net EUR. */
  hourly: number;
  monthly: number;
}

export const serverTypes: HetznerServerType[] = [
  {
    id: 104,
    name: 'cx22',
    description: 'CX22',
    cores: 2,
    memory: 4,
    disk: 40,
    cpu_type: 'shared',
    architecture: 'x86',
    hourly: 0.006,
    monthly: 3.79,
  },
  {
    id: 105,
    name: 'cx32',
    description: 'CX32',
    cores: 4,
    memory: 8,
    disk: 80,
    cpu_type: 'shared',
    architecture: 'x86',
    hourly: 0.0106,
    monthly: 6.8,
  },
  {
    id: 106,
    name: 'cx42',
    description: 'CX42',
    cores: 8,
    memory: 16,
    disk: 160,
    cpu_type: 'shared',
    architecture: 'x86',
    hourly: 0.0263,
    monthly: 16.4,
  },
  {
    id: 22,
    name: 'cpx11',
    description: 'CPX 11',
    cores: 2,
    memory: 2,
    disk: 40,
    cpu_type: 'shared',
    architecture: 'x86',
    hourly: 0.0072,
    monthly: 4.49,
  },
  {
    id: 45,
    name: 'cax11',
    description: 'CAX11',
    cores: 2,
    memory: 4,
    disk: 40,
    cpu_type: 'shared',
    architecture: 'arm',
    hourly: 0.006,
    monthly: 3.79,
  },
  {
    id: 96,
    name: 'ccx13',
    description: 'CCX13 Dedicated CPU',
    cores: 2,
    memory: 8,
    disk: 80,
    cpu_type: 'dedicated',
    architecture: 'x86',
    hourly: 0.0224,
    monthly: 13.99,
  },
];

export interface HetznerSystemImage {
  id: number;
  name: string;
  description: string;
  os_flavor: 'ubuntu' | 'debian' | 'rocky' | 'fedora';
  os_version: string;
  created: string;
}

export const systemImages: HetznerSystemImage[] = [
  {
    id: 161547269,
    name: 'ubuntu-24.04',
    description: 'Ubuntu 24.04',
    os_flavor: 'ubuntu',
    os_version: '24.04',
    created: '2024-04-25T12:00:00Z',
  },
  {
    id: 67794396,
    name: 'ubuntu-22.04',
    description: 'Ubuntu 22.04',
    os_flavor: 'ubuntu',
    os_version: '22.04',
    created: '2022-04-21T12:00:00Z',
  },
  { id: 114690387, name: 'debian-12', description: 'Debian 12', os_flavor: 'debian', os_version: '12', created: '2023-06-13T12:00:00Z' },
  { id: 76766499, name: 'rocky-9', description: 'Rocky Linux 9', os_flavor: 'rocky', os_version: '9', created: '2022-07-14T12:00:00Z' },
  { id: 178032210, name: 'fedora-40', description: 'Fedora 40', os_flavor: 'fedora', os_version: '40', created: '2024-04-24T12:00:00Z' },
];
