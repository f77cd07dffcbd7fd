# Provisions a Redmine for Recouvrement. Idempotent: a second run changes nothing.
#
#   recouvrement redmine spec > schema.json        # the names, from the service's settings
#   cd /usr/share/redmine   # (or your Redmine's root)
#   RAILS_ENV=production bundle exec rails runner /path/to/provision.rb schema.json
#
# Creates or completes: the statuses, trackers (with workflows), issue custom fields
# (the searched ones "used as a filter"), the project, the groups that receive tickets
# (group assignment enabled), a role and a user for the service, and the staff role.
# Prints one line per change, then SERVICE_API_KEY=<key> for the service's user.
require 'json'
require 'securerandom'

spec_path = ARGV[0] or abort('usage: rails runner provision.rb schema.json')
spec = JSON.parse(File.read(spec_path))
$changes = 0

def changed(what)
  $changes += 1
  puts "+ #{what}"
end

def save!(record, what)
  return record unless record.new_record? || record.changed?
  record.save!
  changed(what)
  record
end

unless Setting.rest_api_enabled?
  Setting.rest_api_enabled = '1'
  changed('API REST activée')
end
unless Setting.issue_group_assignment?
  Setting.issue_group_assignment = '1'
  changed('assignation aux groupes activée')
end

statuses = spec['statuses'].map do |s|
  st = IssueStatus.find_or_initialize_by(name: s['name'])
  st.is_closed = s['closed']
  save!(st, "statut #{s['name']}")
end
default_status = statuses.first

# The service's role gets exactly its permissions (any other is removed: least privilege);
# the staff role gets at least its own (an admin may grant people more).
roles = [[spec['service_role'], true], [spec['staff_role'], false]].map do |r, exact|
  role = Role.find_or_initialize_by(name: r['name'])
  role.assignable = r['assignable']
  role.issues_visibility = 'all'
  wanted = r['permissions'].map(&:to_sym)
  extra = exact ? role.permissions - wanted : []
  role.permissions = (role.permissions - extra) | wanted unless (wanted - role.permissions).empty? && extra.empty?
  removed = extra.any? && !role.new_record? ? " (permissions retirées : #{extra.join(', ')})" : ''
  save!(role, "rôle #{r['name']}#{removed}")
end

trackers = spec['trackers'].map do |name|
  tracker = Tracker.find_or_initialize_by(name: name)
  tracker.default_status ||= default_status
  save!(tracker, "tracker #{name}")
end

# Workflow: every listed status may move to every other, for the service's and staff roles.
trackers.each do |tracker|
  roles.each do |role|
    ([0] + statuses.map(&:id)).product(statuses.map(&:id)).each do |from, to|
      next if from == to
      next if WorkflowTransition.where(tracker_id: tracker.id, role_id: role.id, old_status_id: from,
                                       new_status_id: to).exists?
      WorkflowTransition.create!(tracker_id: tracker.id, role_id: role.id, old_status_id: from, new_status_id: to)
      $changes += 1
    end
  end
end

project = Project.find_by(identifier: spec['project'])
if project.nil?
  project = Project.new(name: spec['project'].capitalize, identifier: spec['project'], is_public: false)
  project.enabled_module_names = ['issue_tracking']
  project.trackers = trackers
  save!(project, "projet #{spec['project']}")
else
  missing = trackers - project.trackers.to_a
  unless missing.empty?
    project.trackers = project.trackers.to_a | missing
    changed("trackers du projet : #{missing.map(&:name).join(', ')}")
  end
  unless project.module_enabled?(:issue_tracking)
    project.enable_module!(:issue_tracking)
    changed('module demandes activé')
  end
end

spec['custom_fields'].each do |f|
  field = IssueCustomField.find_or_initialize_by(name: f['name'])
  if field.new_record?
    field.field_format = f['format']
    field.is_for_all = false
    field.visible = true
    field.editable = true
  elsif field.field_format != f['format']
    abort("champ #{f['name']} : format #{field.field_format} trouvé, #{f['format']} attendu")
  end
  field.possible_values = (field.possible_values | f['values']) if f['format'] == 'list'
  field.is_filter = true if f['searched'] || field.new_record?
  field.searchable = true if f['searched'] && field.format.searchable_supported  # not for bool, date…
  field.text_formatting = 'full' if f['format'] == 'text' && field.new_record?
  was_new = field.new_record?
  missing = trackers.select { |t| f['trackers'].include?(t.name) } - field.trackers.to_a
  field.trackers = field.trackers.to_a | missing unless missing.empty?
  unbound = !field.is_for_all && !field.projects.include?(project)
  field.projects = field.projects.to_a | [project] if unbound
  changed("champ #{f['name']} : trackers ou projet") if !was_new && (missing.any? || unbound)
  save!(field, "champ #{f['name']}")
end

def ensure_member(project, principal, role)
  member = Member.find_by(project_id: project.id, user_id: principal.id)
  if member.nil?
    Member.create!(project: project, principal: principal, role_ids: [role.id])
    changed("membre #{principal.name} (#{role.name})")
  elsif !member.role_ids.include?(role.id)
    member.role_ids = member.role_ids | [role.id]
    member.save!
    changed("rôle #{role.name} pour #{principal.name}")
  end
end

service_role, staff_role = roles
spec['groups'].each do |name|
  group = Group.find_by(lastname: name) || save!(Group.new(lastname: name), "groupe #{name}")
  ensure_member(project, group, staff_role)
end

u = spec['service_user']
user = User.find_by(login: u['login'])
if user.nil?
  user = User.new(firstname: u['firstname'], lastname: u['lastname'], mail: u['mail'])
  user.login = u['login']
  user.password = SecureRandom.hex(24)
  user.admin = false
  save!(user, "utilisateur #{u['login']}")
end
ensure_member(project, user, service_role)

puts "changements : #{$changes}"
puts "SERVICE_API_KEY=#{user.api_key}"
