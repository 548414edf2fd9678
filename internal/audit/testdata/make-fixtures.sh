#!/usr/bin/env bash
# Regenerates the fixture trees in this directory (run from anywhere).
cd "$(dirname "$0")"
set -e
w() { mkdir -p "$(dirname "$1")"; cat > "$1"; }
proc_sys() { # root pattern uses_pid suid pipe_limit
  printf '%s\n' "$2" | w $1/proc/sys/kernel/core_pattern
  echo $3 | w $1/proc/sys/kernel/core_uses_pid
  echo $4 | w $1/proc/sys/fs/suid_dumpable
  echo $5 | w $1/proc/sys/kernel/core_pipe_limit
}
accounts() { # root webuser uid
  w $1/etc/passwd <<EOF
root:x:0:0:root:/root:/bin/bash
$2:x:$3:$3:$2:/var/www:/usr/sbin/nologin
EOF
  w $1/etc/group <<EOF
root:x:0:
$2:x:$3:
EOF
}
proc_fpm() { # root masterpid conf pool uid soft filter
  printf 'php-fpm: master process (%s)\0\0\0' "$3" | w $1/proc/$2/cmdline
  printf 'Name:\tphp-fpm\nPPid:\t1\nUid:\t0\t0\t0\t0\n' | w $1/proc/$2/status
  printf 'Limit                     Soft Limit           Hard Limit           Units     \nMax core file size        %-20s unlimited            bytes     \n' $6 | w $1/proc/$2/limits
  echo 00000033 | w $1/proc/$2/coredump_filter
  wp=$(( $2 + 1 ))
  printf 'php-fpm: pool %s\0\0\0' "$4" | w $1/proc/$wp/cmdline
  printf 'Name:\tphp-fpm\nPPid:\t%s\nUid:\t%s\t%s\t%s\t%s\n' $2 $5 $5 $5 $5 | w $1/proc/$wp/status
  printf 'Limit                     Soft Limit           Hard Limit           Units     \nMax core file size        %-20s unlimited            bytes     \n' $6 | w $1/proc/$wp/limits
  echo $7 | w $1/proc/$wp/coredump_filter
}
debian_unit() { # root ver
  w $1/lib/systemd/system/php$2-fpm.service <<EOF
[Unit]
Description=The PHP $2 FastCGI Process Manager
Documentation=man:php-fpm$2(8)
After=network.target

[Service]
Type=notify
ExecStart=/usr/sbin/php-fpm$2 --nodaemonize \\
    --fpm-config /etc/php/$2/fpm/php-fpm.conf
ExecReload=/bin/kill -USR2 \$MAINPID

[Install]
WantedBy=multi-user.target
EOF
}
debian_fpm() { # root ver
  w $1/etc/php/$2/fpm/php-fpm.conf <<EOF
;;;;;;;;;;;;;;;;;;;;;
; FPM Configuration ;
;;;;;;;;;;;;;;;;;;;;;

[global]
pid = /run/php/php$2-fpm.pid
error_log = /var/log/php$2-fpm.log
;rlimit_core = 0

include=/etc/php/$2/fpm/pool.d/*.conf
EOF
}
debian_opcache() { # root ver
  mkdir -p $1/etc/php/$2/mods-available $1/etc/php/$2/fpm/conf.d
  w $1/etc/php/$2/mods-available/opcache.ini <<EOF
; configuration for php opcache module
; priority=10
zend_extension=opcache.so
opcache.jit=off
EOF
  ln -sf ../../mods-available/opcache.ini $1/etc/php/$2/fpm/conf.d/10-opcache.ini
  echo "extension=pdo.so" | w $1/etc/php/$2/fpm/conf.d/10-pdo.ini
}
phpini() { # root path jit buf
  w $2 <<EOF
[PHP]
engine = On
memory_limit = 256M
error_reporting = E_ALL & ~E_DEPRECATED & ~E_STRICT

[Pcre]
;pcre.backtrack_limit=100000
;pcre.jit=1

[opcache]
opcache.enable=1
opcache.memory_consumption=128
opcache.jit=$3
opcache.jit_buffer_size=$4
EOF
}

# ---------------- debian12-defects ----------------
R=debian12-defects
rm -rf $R; mkdir -p $R/run/systemd/system; touch $R/run/systemd/system/.keep
proc_sys $R core 0 0 0
accounts $R www-data 33
debian_unit $R 8.2
debian_fpm $R 8.2
phpini $R $R/etc/php/8.2/fpm/php.ini tracing 64M
debian_opcache $R 8.2
w $R/etc/php/8.2/fpm/pool.d/www.conf <<'EOF'
; Start a new pool named 'www'.
; the variable $pool can be used in any directive and will be replaced by the
; pool name ('www' here)
[www]
user = www-data
group = www-data
listen = /run/php/php8.2-fpm.sock
listen.owner = www-data
pm = dynamic
pm.max_children = 5
;rlimit_core = unlimited
;process.dumpable = yes
php_admin_value[error_log] = /var/log/fpm-$pool.log
EOF
proc_fpm $R 4242 /etc/php/8.2/fpm/php-fpm.conf www 33 0 00000031
# nginx serving /var/www/html (root-owned, 755): a relative "core" cannot land there
w $R/etc/nginx/nginx.conf <<'EOF'
user www-data;
http {
	include /etc/nginx/mime.types;
	include /etc/nginx/sites-enabled/*;
}
EOF
w $R/etc/nginx/sites-available/default <<'EOF'
server {
	listen 80 default_server;
	root /var/www/html;
	index index.php index.html;
	# root /var/www/commented-out;
	location ~ \.php$ {
		include snippets/fastcgi-php.conf;
		fastcgi_pass unix:/run/php/php8.2-fpm.sock;
	}
}
EOF
mkdir -p $R/etc/nginx/sites-enabled
# an absolute link, as Debian makes it: followed inside the tree
ln -s /etc/nginx/sites-available/default $R/etc/nginx/sites-enabled/default
echo '<?php phpinfo();' | w $R/var/www/html/index.php
# a second version side by side (packages.sury.org layout): tracing JIT + PCRE JIT
debian_unit $R 8.3
debian_fpm $R 8.3
phpini $R $R/etc/php/8.3/fpm/php.ini tracing 64M
mkdir -p $R/etc/php/8.3/fpm/conf.d
printf 'zend_extension=opcache.so\n' | w $R/etc/php/8.3/fpm/conf.d/10-opcache.ini
w $R/etc/php/8.3/fpm/pool.d/www.conf <<'EOF'
[www]
user = www-data
group = www-data
listen = /run/php/php8.3-fpm.sock
pm = ondemand
pm.max_children = 5
rlimit_core = unlimited
php_admin_value[memory_limit] = 512M
EOF

# ---------------- debian12-clean ----------------
R=debian12-clean
rm -rf $R; mkdir -p $R/run/systemd/system; touch $R/run/systemd/system/.keep
proc_sys $R '|/lib/systemd/systemd-coredump %P %u %g %s %t %c %h' 0 0 16
accounts $R www-data 33
printf '#!/bin/sh\n# stand-in for the systemd-coredump binary\n' | w $R/lib/systemd/systemd-coredump
w $R/etc/systemd/coredump.conf <<'EOF'
#  This file is part of systemd.
[Coredump]
#Storage=external
#Compress=yes
#ProcessSizeMax=2G
#ExternalSizeMax=2G
#MaxUse=
#KeepFree=
EOF
debian_unit $R 8.2
w $R/etc/systemd/system/php8.2-fpm.service.d/override.conf <<'EOF'
[Service]
LimitCORE=infinity
EOF
debian_fpm $R 8.2
phpini $R $R/etc/php/8.2/fpm/php.ini tracing 0
debian_opcache $R 8.2
w $R/etc/php/8.2/fpm/pool.d/www.conf <<'EOF'
[www]
user = www-data
group = www-data
listen = /run/php/php8.2-fpm.sock
pm = dynamic
pm.max_children = 5
rlimit_core = unlimited
process.dumpable = yes
EOF
proc_fpm $R 5000 /etc/php/8.2/fpm/php-fpm.conf www 33 unlimited 00000033

# ---------------- ubuntu2204-apport ----------------
R=ubuntu2204-apport
rm -rf $R; mkdir -p $R/run/systemd/system; touch $R/run/systemd/system/.keep
proc_sys $R '|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E' 0 2 0
accounts $R www-data 33
printf '#!/usr/bin/python3\n# stand-in for apport\n' | w $R/usr/share/apport/apport
printf '# set this to 0 to disable apport\nenabled=1\n' | w $R/etc/default/apport
printf 'X-Powered-By: PHP/8.1.2-1ubuntu2.19\n' | w $R/usr/sbin/php-fpm8.1
printf '/.\n/usr\n/usr/sbin\n/usr/sbin/php-fpm8.1\n' | w $R/var/lib/dpkg/info/php8.1-fpm.list
printf 'ProblemType: Crash\nExecutablePath: /usr/sbin/php-fpm8.1\n' | w $R/var/crash/_usr_sbin_php-fpm8.1.33.crash
debian_unit $R 8.1
debian_fpm $R 8.1
phpini $R $R/etc/php/8.1/fpm/php.ini tracing 128M
debian_opcache $R 8.1
printf 'zend_extension=xdebug.so\nxdebug.mode=debug\n' | w $R/etc/php/8.1/fpm/conf.d/20-xdebug.ini
w $R/etc/php/8.1/fpm/pool.d/www.conf <<'EOF'
[www]
user = www-data
group = www-data
listen = /run/php/php8.1-fpm.sock
pm = dynamic
pm.max_children = 5
rlimit_core = unlimited
process.dumpable = yes
EOF
# Debian's 10-opcache.ini says off; the site turned the JIT back on in a later file
printf 'opcache.jit=tracing\n' | w $R/etc/php/8.1/fpm/conf.d/90-site.ini

# ---------------- ubuntu2404-apport ----------------
R=ubuntu2404-apport
rm -rf $R; mkdir -p $R/run/systemd/system; touch $R/run/systemd/system/.keep
proc_sys $R '|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -F%F -- %E' 0 2 10
accounts $R www-data 33
printf '#!/usr/bin/python3\n# stand-in for apport\n' | w $R/usr/share/apport/apport
printf '# set this to 0 to disable apport\nenabled=0\n' | w $R/etc/default/apport
printf 'X-Powered-By: PHP/8.3.6\n' | w $R/usr/sbin/php-fpm8.3
debian_unit $R 8.3
w $R/etc/systemd/system/php8.3-fpm.service.d/limits.conf <<'EOF'
[Service]
LimitCORE=0
EOF
debian_fpm $R 8.3
phpini $R $R/etc/php/8.3/fpm/php.ini tracing 64M
debian_opcache $R 8.3
printf 'zend.max_allowed_stack_size=-1\n' | w $R/etc/php/8.3/fpm/conf.d/50-stack.ini
w $R/etc/php/8.3/fpm/pool.d/www.conf <<'EOF'
[www]
user = www-data
group = www-data
listen = /run/php/php8.3-fpm.sock
pm = dynamic
pm.max_children = 5
EOF

# ---------------- rhel9-coredump ----------------
R=rhel9-coredump
rm -rf $R; mkdir -p $R/run/systemd/system; touch $R/run/systemd/system/.keep
proc_sys $R '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h' 0 0 16
accounts $R apache 48
printf '#!/bin/sh\n# stand-in for the systemd-coredump binary\n' | w $R/usr/lib/systemd/systemd-coredump
printf 'X-Powered-By: PHP/8.0.30\n' | w $R/usr/sbin/php-fpm
w $R/etc/systemd/coredump.conf <<'EOF'
[Coredump]
Storage=none
ProcessSizeMax=100M
EOF
w $R/usr/lib/systemd/system/php-fpm.service <<'EOF'
[Unit]
Description=The PHP FastCGI Process Manager
After=syslog.target network.target

[Service]
Type=notify
ExecStart=/usr/sbin/php-fpm --nodaemonize
ExecReload=/bin/kill -USR2 $MAINPID
PrivateTmp=true
RuntimeDirectory=php-fpm
RuntimeDirectoryMode=0755

[Install]
WantedBy=multi-user.target
EOF
w $R/etc/php-fpm.conf <<'EOF'
;;;;;;;;;;;;;;;;;;;;;
; FPM Configuration ;
;;;;;;;;;;;;;;;;;;;;;
include=/etc/php-fpm.d/*.conf

[global]
pid = /run/php-fpm/php-fpm.pid
error_log = /var/log/php-fpm/error.log
daemonize = yes
EOF
w $R/etc/php-fpm.d/www.conf <<'EOF'
[www]
user = apache
group = apache
listen = /run/php-fpm/www.sock
listen.acl_users = apache,nginx
pm = dynamic
pm.max_children = 50
slowlog = /var/log/php-fpm/www-slow.log
php_admin_value[error_log] = /var/log/php-fpm/www-error.log
php_value[session.save_path]    = /var/lib/php/session
EOF
phpini $R $R/etc/php.ini tracing 0
printf 'zend_extension=opcache\nopcache.enable=1\nopcache.memory_consumption=128\n' | w $R/etc/php.d/10-opcache.ini
printf 'extension=pdo\n' | w $R/etc/php.d/20-pdo.ini

# ---------------- rhel9-abrt ----------------
R=rhel9-abrt
rm -rf $R; mkdir -p $R/run/systemd/system; touch $R/run/systemd/system/.keep
proc_sys $R '|/usr/libexec/abrt-hook-ccpp %s %c %p %u %g %t %e %P %I %h' 0 0 4
accounts $R apache 48
printf 'X-Powered-By: PHP/8.1.27\n' | w $R/usr/sbin/php-fpm
cp -r rhel9-coredump/usr/lib $R/usr/ ; rm -f $R/usr/lib/systemd/systemd-coredump
cp rhel9-coredump/etc/php-fpm.conf $R/etc/
mkdir -p $R/etc/php-fpm.d $R/etc/php.d
cp rhel9-coredump/etc/php-fpm.d/www.conf $R/etc/php-fpm.d/
cp rhel9-coredump/etc/php.d/*.ini $R/etc/php.d/
phpini $R $R/etc/php.ini tracing 0

# ---------------- rhel9-clean (Remi's php83 next to the system php) ----------------
R=rhel9-clean
rm -rf $R; mkdir -p $R/run/systemd/system; touch $R/run/systemd/system/.keep
proc_sys $R '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h' 0 0 16
accounts $R apache 48
printf '#!/bin/sh\n# stand-in for the systemd-coredump binary\n' | w $R/usr/lib/systemd/systemd-coredump
w $R/usr/lib/systemd/system/php83-php-fpm.service <<'EOF'
[Unit]
Description=The PHP FastCGI Process Manager
After=syslog.target network.target

[Service]
Type=notify
EnvironmentFile=/etc/opt/remi/php83/sysconfig/php-fpm
ExecStart=/opt/remi/php83/root/usr/sbin/php-fpm --nodaemonize
ExecReload=/bin/kill -USR2 $MAINPID
LimitCORE=infinity

[Install]
WantedBy=multi-user.target
EOF
w $R/etc/opt/remi/php83/php-fpm.conf <<'EOF'
include=/etc/opt/remi/php83/php-fpm.d/*.conf
[global]
pid = /var/opt/remi/php83/run/php-fpm/php-fpm.pid
error_log = /var/opt/remi/php83/log/php-fpm/error.log
EOF
w $R/etc/opt/remi/php83/php-fpm.d/www.conf <<'EOF'
[www]
user = apache
group = apache
listen = /var/opt/remi/php83/run/php-fpm/www.sock
pm = dynamic
pm.max_children = 50
rlimit_core = unlimited
process.dumpable = yes
EOF
phpini $R $R/etc/opt/remi/php83/php.ini tracing 0
printf 'zend_extension=opcache\nopcache.enable=1\n' | w $R/etc/opt/remi/php83/php.d/10-opcache.ini

# ---------------- hostile ----------------
R=hostile
rm -rf $R
proc_sys $R core 1 0 0
accounts $R www-data 33
debian_unit $R 8.2
w $R/etc/systemd/system/php8.2-fpm.service.d/broken.conf <<'EOF'
[Service
LimitCORE=bogus-value
this line has no equals sign
[Service]
LimitCORE=not-a-size
Environment=A=1 \
  B=2
EOF
w $R/etc/php/8.2/fpm/php-fpm.conf <<'EOF'
[global]
include=/etc/php/8.2/fpm/loop-a.conf
include=/etc/php/8.2/fpm/pool.d/*.conf
include=/etc/php/8.2/fpm/missing/*.conf
EOF
printf 'include=/etc/php/8.2/fpm/loop-b.conf\n' | w $R/etc/php/8.2/fpm/loop-a.conf
printf 'include=/etc/php/8.2/fpm/loop-a.conf\n' | w $R/etc/php/8.2/fpm/loop-b.conf
w $R/etc/php/8.2/fpm/pool.d/www.conf <<'EOF'
[www
[www]
user = "www-data
group = www-data
rlimit_core = lots
= no key
just some words
php_admin_value[memory_limit] = ${UNSET_VAR}M
EOF
ln -s /nonexistent/dangling.conf $R/etc/php/8.2/fpm/pool.d/dangling.conf
mkdir -p $R/etc/php/8.2/fpm/php.ini $R/etc/php/8.2/fpm/conf.d
touch $R/etc/php/8.2/fpm/php.ini/.keep  # a directory where php.ini should be (git keeps no empty dirs)
printf '\x00\x01\xff\xfe[[[\n=\n"\n' > $R/etc/php/8.2/fpm/conf.d/10-garbage.ini

# --- Apache httpd + mod_php -------------------------------------------------
# debian12-apache: Debian's apache2 with libapache2-mod-php8.2 as installed (no
# CoreDumpDirectory, no LimitCORE), a vhost that sets opcache.jit with
# php_admin_value, the tracing JIT in mod_php's conf.d; a running parent and child.
R=debian12-apache
rm -rf $R
proc_sys $R core 0 0 0
accounts $R www-data 33
mkdir -p $R/run/systemd/system && touch $R/run/systemd/system/.keep
w $R/etc/apache2/envvars <<'EOF'
# envvars - default environment variables for apache2ctl
unset HOME
if [ "${APACHE_CONFDIR##/etc/apache2-}" != "${APACHE_CONFDIR}" ] ; then
	SUFFIX="-${APACHE_CONFDIR##/etc/apache2-}"
else
	SUFFIX=
fi
export APACHE_RUN_USER=www-data
export APACHE_RUN_GROUP=www-data
export APACHE_PID_FILE=/var/run/apache2$SUFFIX/apache2.pid
export APACHE_LOG_DIR=/var/log/apache2$SUFFIX
## The command to get the status for 'apache2ctl status'.
#export APACHE_LYNX='www-browser -dump'
EOF
w $R/etc/apache2/apache2.conf <<'EOF'
# This is the main Apache server configuration file.
#ServerRoot "/etc/apache2"
DefaultRuntimeDir ${APACHE_RUN_DIR}
PidFile ${APACHE_PID_FILE}
Timeout 300
KeepAlive On
# These need to be set in /etc/apache2/envvars
User ${APACHE_RUN_USER}
Group ${APACHE_RUN_GROUP}
HostnameLookups Off
ErrorLog ${APACHE_LOG_DIR}/error.log
LogLevel warn
# Include module configuration:
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
Include ports.conf
<Directory />
	Options FollowSymLinks
	AllowOverride None
	Require all denied
</Directory>
AccessFileName .htaccess
IncludeOptional conf-enabled/*.conf
IncludeOptional sites-enabled/*.conf
EOF
printf 'Listen 80\n' | w $R/etc/apache2/ports.conf
printf '# Depends: mpm_prefork\nLoadModule php_module /usr/lib/apache2/modules/libphp8.2.so\n' | w $R/etc/apache2/mods-enabled/php8.2.load
printf 'LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so\n' | w $R/etc/apache2/mods-enabled/mpm_prefork.load
w $R/etc/apache2/mods-enabled/php8.2.conf <<'EOF'
<FilesMatch ".+\.ph(?:ar|p|tml)$">
    SetHandler application/x-httpd-php
</FilesMatch>
EOF
printf 'ServerTokens OS\nServerSignature On\n' | w $R/etc/apache2/conf-enabled/security.conf
w $R/etc/apache2/sites-enabled/000-default.conf <<'EOF'
<VirtualHost *:80>
	ServerAdmin webmaster@localhost
	DocumentRoot /var/www/html
	<Directory /var/www/html>
		# the shop's JIT setting, per virtual host
		php_admin_value opcache.jit "tracing"
		php_value memory_limit 256M
	</Directory>
	ErrorLog ${APACHE_LOG_DIR}/error.log
</VirtualHost>
EOF
mkdir -p $R/var/www/html && printf '<?php phpinfo();\n' | w $R/var/www/html/index.php
w $R/etc/php/8.2/apache2/php.ini <<'EOF'
[PHP]
memory_limit = 128M
[opcache]
;opcache.enable=1
EOF
printf 'zend_extension=opcache.so\nopcache.jit=tracing\nopcache.jit_buffer_size=64M\n' | w $R/etc/php/8.2/apache2/conf.d/10-opcache.ini
printf 'extension=ffi.so\n' | w $R/etc/php/8.2/apache2/conf.d/20-ffi.ini
w $R/lib/systemd/system/apache2.service <<'EOF'
[Unit]
Description=The Apache HTTP Server
After=network.target remote-fs.target nss-lookup.target
Documentation=https://httpd.apache.org/docs/2.4/

[Service]
Type=forking
Environment=APACHE_STARTED_BY_SYSTEMD=true
ExecStart=/usr/sbin/apachectl start
ExecStop=/usr/sbin/apachectl graceful-stop
ExecReload=/usr/sbin/apachectl graceful
KillMode=mixed
PrivateTmp=true
Restart=on-abort

[Install]
WantedBy=multi-user.target
EOF

# rhel9-httpd: RHEL's httpd with mod_php (15-php.conf), CoreDumpDirectory
# /var/crash/httpd, an absolute core_pattern, LimitCORE=infinity: cores are
# written. (php.ini and libphp.so stand in for the packages' files.)
R=rhel9-httpd
rm -rf $R
proc_sys $R '/var/crash/core.%e.%p' 0 0 0
accounts $R apache 48
mkdir -p $R/run/systemd/system && touch $R/run/systemd/system/.keep
mkdir -p $R/var/crash/httpd && chmod 1733 $R/var/crash $R/var/crash/httpd
touch $R/var/crash/httpd/.keep $R/var/crash/.keep
w $R/etc/httpd/conf/httpd.conf <<'EOF'
ServerRoot "/etc/httpd"
Listen 80
Include conf.modules.d/*.conf
User apache
Group apache
ServerAdmin root@localhost
DocumentRoot "/var/www/html"
ErrorLog "logs/error_log"
IncludeOptional conf.d/*.conf
EOF
printf 'LoadModule mpm_prefork_module modules/mod_mpm_prefork.so\n' | w $R/etc/httpd/conf.modules.d/00-mpm.conf
w $R/etc/httpd/conf.modules.d/15-php.conf <<'EOF'
# Cannot load both php5, php7 and php modules
<IfModule !mod_php5.c>
  <IfModule !mod_php7.c>
    <IfModule prefork.c>
      LoadModule php_module modules/libphp.so
    </IfModule>
  </IfModule>
</IfModule>
EOF
printf '# Apache writes cores here (and makes its children dumpable)\nCoreDumpDirectory /var/crash/httpd\n' | w $R/etc/httpd/conf.d/coredump.conf
printf 'PHP module stand-in; X-Powered-By: PHP/8.1.27\n' | w $R/etc/httpd/modules/libphp.so
printf '[PHP]\nmemory_limit = 128M\npcre.jit = 1\n' | w $R/etc/php.ini
printf 'zend_extension=opcache\nopcache.enable=1\nopcache.jit=function\nopcache.jit_buffer_size=32M\n' | w $R/etc/php.d/10-opcache.ini
w $R/usr/lib/systemd/system/httpd.service <<'EOF'
[Unit]
Description=The Apache HTTP Server
After=network.target remote-fs.target nss-lookup.target httpd-init.service

[Service]
Type=notify
Environment=LANG=C
ExecStart=/usr/sbin/httpd $OPTIONS -DFOREGROUND
ExecReload=/usr/sbin/httpd $OPTIONS -k graceful
KillSignal=SIGWINCH
KillMode=mixed
PrivateTmp=true

[Install]
WantedBy=multi-user.target
EOF
printf '[Service]\nLimitCORE=infinity\n' | w $R/etc/systemd/system/httpd.service.d/core.conf
