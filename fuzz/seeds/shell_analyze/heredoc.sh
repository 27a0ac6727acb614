r=rm; $r -rf /srv; cat <<EOF | psql
DROP TABLE t;
EOF
ssh prod "kubectl delete ns app"