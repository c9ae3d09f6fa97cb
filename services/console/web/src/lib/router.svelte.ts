export const PAGES = [
  { id: 'overview', title: 'Overview' },
  { id: 'deploys', title: 'Deploys' },
  { id: 'configs', title: 'Deploy configs' },
  { id: 'servers', title: 'Servers' },
  { id: 'projects', title: 'Projects' },
  { id: 'routes', title: 'Routes' },
  { id: 'instances', title: 'Instances' },
  { id: 'incidents', title: 'Incidents' },
  { id: 'events', title: 'Events' },
] as const;
export type PageId = (typeof PAGES)[number]['id'];

const read = (): PageId => {
  const id = location.hash.replace(/^#\/?/, '');
  return (PAGES.find((p) => p.id === id)?.id ?? 'overview') as PageId;
};

export const route = $state<{ page: PageId }>({ page: read() });

addEventListener('hashchange', () => {
  route.page = read();
});
