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
#
#   RAILS_ENV=production bundle exec rails runner /path/to/provision.rb schema.json --check
#
# Check mode (issue 15) changes nothing: it verifies what Redmine's REST API does not show
# the service (`recouvrement redmine check` verifies the rest, and runs this mode itself with
# --redmine-dir): each field visible to the service's role and on its trackers, the fields and
# attributes the service writes not read-only for its role in the workflow, group assignment,
# the groups (project members with an assignable role, at least one active member), the
# service's account active, the text formatting. One French line per problem ("problème : …",
# with the fix), "information : …" lines, exit status 1 when there is a problem.
require 'json'
require 'securerandom'

spec_path = ARGV.reject { |arg| arg.start_with?('--') }.first or
  abort('usage: rails runner provision.rb schema.json [--check]')
spec = JSON.parse(File.read(spec_path))

# --- check mode (issue 15): reads only, inside a transaction rolled back ----------------------
CORE_LABELS = { 'assigned_to_id' => 'Assigné à', 'parent_issue_id' => 'Tâche parente', 'start_date' => 'Début',
                'due_date' => 'Echéance' }.freeze
TEXT_FORMATS = { 'textile' => 'Textile', 'markdown' => 'Markdown', 'common_mark' => 'CommonMark Markdown',
                 '' => 'Aucun' }.freeze

def check_fields(spec, role, trackers, problems)
  spec['custom_fields'].each do |f|
    field = IssueCustomField.find_by(name: f['name'])
    next if field.nil? # missing: `recouvrement redmine check` names it (REST)
    menu = "Administration › Champs personnalisés › #{f['name']}"
    if role && !field.visible? && !field.role_ids.include?(role.id)
      seen = field.roles.map(&:name).join(', ').presence || 'aucun'
      problems << "champ « #{f['name']} » masqué au rôle « #{role.name} » (visible par : #{seen}) : le service ne " \
                  "peut ni le lire ni l'écrire — #{menu} › Visible : « par tout le monde », ou cocher « #{role.name} »"
    end
    absent = f['trackers'].select { |name| trackers[name] && !field.tracker_ids.include?(trackers[name].id) }
    unless absent.empty?
      problems << "champ « #{f['name']} » absent des trackers #{absent.join(', ')} : #{menu} › Trackers : " \
                  "cocher #{absent.join(', ')}"
    end
    written = Array(f['written']).map { |name| trackers[name] }.compact
    check_writable(role, written, field.id.to_s, "champ « #{f['name']} »", problems)
    next unless f['formatted'] && field.text_formatting != 'full'

    problems << "champ « #{f['name']} » sans mise en forme : le service l'écrit avec gras et listes, qui " \
                "s'afficheraient tels quels — #{menu} › Formatage du texte : cocher « Formaté »"
  end
end

# Workflow field permissions: a field or attribute the service writes must not be "Lecture"
# (read-only) for its role, in any status of those trackers (Issue#read_only_attribute_names).
def check_writable(role, trackers, field_name, label, problems)
  return if role.nil?

  trackers.each do |tracker|
    statuses = WorkflowPermission.where(tracker_id: tracker.id, role_id: role.id, field_name: field_name,
                                        rule: 'readonly').map { |w| w.old_status.name }.sort
    next if statuses.empty?

    problems << "#{label} en lecture seule pour le rôle « #{role.name} » sur les tickets « #{tracker.name} » " \
                "(statuts : #{statuses.join(', ')}) : le service l'écrit — Administration › Workflow › Permissions " \
                "sur les champs, rôle « #{role.name} », tracker « #{tracker.name} » : remplacer « Lecture » par un " \
                "choix vide"
  end
end

def check_attributes(spec, role, trackers, problems)
  spec.fetch('written_attributes', {}).each do |attribute, names|
    on = names.map { |name| trackers[name] }.compact
    if attribute == 'status_id'
      check_transitions(spec, role, on, problems)
      next
    end
    label = "« #{CORE_LABELS.fetch(attribute, attribute)} »"
    check_writable(role, on, attribute, label, problems)
    on.select { |t| t.disabled_core_fields.include?(attribute) }.each do |t|
      problems << "#{label} désactivé sur le tracker « #{t.name} » : le service le renseigne — Administration › " \
                  "Trackers › #{t.name} › Champs standards : cocher #{label}"
    end
  end
end

# The status the service sets (closed) must be reachable by its role from every open one.
def check_transitions(spec, role, trackers, problems)
  closed = spec['statuses'].find { |s| s['closed'] }
  target = closed && IssueStatus.find_by(name: closed['name'])
  return if role.nil? || target.nil?

  sources = IssueStatus.where(name: spec['statuses'].reject { |s| s['closed'] }.map { |s| s['name'] }).to_a
  trackers.each do |tracker|
    sources.each do |source|
      next if WorkflowTransition.where(tracker_id: tracker.id, role_id: role.id, old_status_id: source.id,
                                       new_status_id: target.id).exists?

      problems << "le rôle « #{role.name} » ne peut pas passer les tickets « #{tracker.name} » de « #{source.name} » " \
                  "à « #{target.name} » : Administration › Workflow › Changements de statut, rôle « #{role.name} », " \
                  "tracker « #{tracker.name} » : cocher cette transition"
    end
  end
end

# The groups the service assigns tickets to: exist, project members with an assignable role,
# at least one active member (a group of locked accounts receives tickets nobody sees).
def check_groups(spec, project, problems)
  staff = spec['staff_role']['name']
  spec['groups'].each do |name|
    group = Group.find_by(lastname: name)
    member = group && Member.find_by(project_id: project.id, user_id: group.id)
    if group.nil? # the routing may name a person: a member of the project, active
      person = Member.where(project_id: project.id).map(&:principal).find { |p| p.is_a?(User) && p.name == name }
      if person && !person.active?
        problems << "« #{name} » (routage) est un compte verrouillé ou non activé : Administration › Utilisateurs › " \
                    "#{person.login} : Déverrouiller, ou router vers une autre personne"
      end
      next if person

      problems << "groupe « #{name} » introuvable : Administration › Groupes › Nouveau groupe « #{name} », avec ses " \
                  "membres, puis Projet › Configuration › Membres : l'ajouter avec le rôle « #{staff} »"
      next
    elsif member.nil?
      problems << "groupe « #{name} » absent des membres du projet #{project.identifier} : Projet › Configuration " \
                  "› Membres : l'ajouter avec le rôle « #{staff} »"
    elsif member.roles.none?(&:assignable?)
      problems << "groupe « #{name} » sans rôle assignable dans le projet #{project.identifier} : Projet › " \
                  "Configuration › Membres : lui donner le rôle « #{staff} »"
    end
    next if group.users.where(status: User::STATUS_ACTIVE).exists?

    locked = group.users.count
    why = locked.zero? ? 'aucun membre' : "ses #{locked} membre(s) verrouillé(s) ou non activé(s)"
    problems << "groupe « #{name} » sans membre actif (#{why}) : les tickets qui lui sont assignés ne sont vus de " \
                "personne — Administration › Groupes › #{name} › Utilisateurs : ajouter une personne active " \
                "(ou Administration › Utilisateurs : déverrouiller)"
  end
end

# The service's account: the users holding its role in the project, each active (Redmine
# refuses the key of a locked account: 401).
def check_service_account(spec, role, project, problems)
  return if role.nil?

  users = Member.joins(:member_roles).where(project_id: project.id, member_roles: { role_id: role.id })
                .map(&:principal).select { |p| p.is_a?(User) }.uniq
  if users.empty?
    login = spec['service_user']['login']
    problems << "aucun compte n'a le rôle « #{role.name} » dans le projet #{project.identifier} : Projet › " \
                "Configuration › Membres : y ajouter le compte du service (#{login}) avec ce rôle"
  end
  users.reject(&:active?).each do |user|
    state, fix = user.locked? ? %w[verrouillé Déverrouiller] : ['non activé', 'Activer']
    problems << "le compte du service « #{user.login} » est #{state} : Redmine refuse sa clé API, le service ne lit " \
                "ni n'écrit plus rien — Administration › Utilisateurs › #{user.login} : #{fix}"
  end
end

def check_settings(spec, problems, infos)
  problems << "API REST désactivée : Administration › Configuration › API : cocher « Activer l'API REST »" \
    unless Setting.rest_api_enabled?
  unless Setting.issue_group_assignment?
    problems << 'assignation des demandes aux groupes désactivée : Redmine refuse les tickets que le service ' \
                'assigne à un groupe — Administration › Configuration › Suivi des demandes : cocher « Permettre ' \
                "l'assignation des demandes aux groupes »"
  end
  found = Setting.text_formatting.to_s
  wanted = spec.fetch('text_format', 'textile') # a schema.json of an older `redmine spec`: Textile
  name = TEXT_FORMATS.fetch(found, found)
  infos << "formatage du texte de Redmine : #{name} (le service écrit en #{TEXT_FORMATS.fetch(wanted, wanted)})"
  offered = Redmine::WikiFormatting.format_names.to_a
  if !offered.include?(found)
    # "Aucun", or Markdown where Redcarpet is absent (Debian's Redmine 6): Redmine shows the
    # source as plain text, entities and asterisks included, whatever the service writes.
    problems << "formatage du texte « #{name} » : ce Redmine n'a pas de formateur pour lui (il n'offre que " \
                "#{offered.map { |f| TEXT_FORMATS.fetch(f, f) }.join(', ')}) et montre les notes du service comme " \
                'texte brut — Administration › Paramètres › Général › Formatage du texte : en choisir un proposé ' \
                "(CommonMark Markdown, le plus proche de Markdown ; les textes existants s'afficheront selon lui), " \
                'puis RECOUVREMENT_REDMINE_TEXT_FORMAT au même'
  elsif found != wanted
    # The service follows Redmine, not the reverse: changing Redmine's setting would show
    # every text already written in the office (tickets, wiki) wrongly.
    problems << "formatage du texte « #{name} » : le service écrit ses notes et descriptions en " \
                "#{TEXT_FORMATS.fetch(wanted, wanted)}, elles s'afficheraient mal — dans la configuration du service : " \
                "RECOUVREMENT_REDMINE_TEXT_FORMAT=#{found} (ou redmine_text_format: #{found} dans son fichier)"
  end
  # Redmine breaks CommonMark's lines only when the setting is exactly true (a blank or
  # quoted value turns it off).
  return unless found == 'common_mark' && Redmine::Configuration['common_mark_enable_hardbreaks'] != true

  problems << 'CommonMark sans retours à la ligne (common_mark_enable_hardbreaks absent de true dans ' \
              'config/configuration.yml) : les lignes des notes du service se suivraient sur une seule ligne — ' \
              "le mettre à true (ou l'enlever), puis redémarrer Redmine"
end

def check(spec)
  problems = []
  infos = []
  ActiveRecord::Base.transaction do
    check_settings(spec, problems, infos)
    project = Project.find_by(identifier: spec['project'])
    if project.nil?
      problems << "projet « #{spec['project']} » introuvable : lancer provision.rb sans --check"
    else
      role = Role.find_by(name: spec['service_role']['name'])
      problems << "rôle « #{spec['service_role']['name']} » introuvable : lancer provision.rb sans --check" if role.nil?
      trackers = Tracker.where(name: spec['trackers']).index_by(&:name)
      check_fields(spec, role, trackers, problems)
      check_attributes(spec, role, trackers, problems)
      check_groups(spec, project, problems)
      check_service_account(spec, role, project, problems)
    end
    raise ActiveRecord::Rollback # nothing of this run is kept, whatever was read
  end
  infos.each { |line| puts "information : #{line}" }
  problems.each { |line| puts "problème : #{line}" }
  puts "vérification : #{problems.size} problème(s)"
  problems.empty?
end

if ARGV.include?('--check')
  connection = ActiveRecord::Base.connection
  # SQLite: wait for Redmine's own writes instead of failing with "database is locked".
  connection.raw_connection.busy_timeout(30_000) if connection.adapter_name =~ /sqlite/i
  exit(check(spec) ? 0 : 1)
end
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
# Left as the office has it (its texts are written in it): the service is set to it instead.
format = Setting.text_formatting.to_s
if Redmine::WikiFormatting.format_names.to_a.include?(format)
  puts "formatage du texte : #{TEXT_FORMATS.fetch(format, format)} — configurer le service avec " \
       "RECOUVREMENT_REDMINE_TEXT_FORMAT=#{format}"
else
  puts "formatage du texte : #{TEXT_FORMATS.fetch(format, format)}, sans formateur dans ce Redmine : en choisir un " \
       '(Administration › Paramètres › Général), puis vérifier avec `recouvrement redmine check`'
end
puts "SERVICE_API_KEY=#{user.api_key}"
