// SPDX-License-Identifier: GPL-2.0
/*
 * pyrebox_corrupt: a kernel module that corrupts kernel structures the way
 * a rootkit would, for the hostile-guest tests, and only while told to.
 *
 * Writing "1" to /proc/pyrebox_corrupt corrupts, "0" restores:
 *  - a fake process "pyrebox_badmm" (pid 90001) is linked into the task
 *    list, with an mm_struct pointer into unmapped memory and a parent
 *    pointer that is not an address;
 *  - a fake process "pyrebox_dag" (pid 90002) is linked into the task list,
 *    with an mm_struct of its own (and an empty page table of its own)
 *    whose maple tree is a DAG: 6 maple_arange_64 nodes, each with all 10
 *    slots pointing at the next (10^5 paths to its one leaf);
 *  - this module's entry on the module list points forward at itself (a
 *    loop that does not pass through the list head);
 *  - this module's kallsyms claims 2^20 symbols;
 *  - the dentry of /tmp/pyrebox_loop.bin gets a parent whose parent is the
 *    dentry itself (a two-dentry cycle).
 * Each is undone by "0" (and at unload). The writer must be the only thing
 * running: nothing the kernel does then walks these structures.
 */
#include <linux/dcache.h>
#include <linux/gfp.h>
#include <linux/list.h>
#include <linux/maple_tree.h>
#include <linux/mm_types.h>
#include <linux/module.h>
#include <linux/namei.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("corrupts kernel structures on request, for introspection tests");

#define BADMM_PID 90001
#define DAG_PID 90002
#define DAG_NODES 6
#define LOOP_FILE "/tmp/pyrebox_loop.bin"

/* The encoding of a maple node pointer (lib/maple_tree.c). */
#define ENODE_TYPE_SHIFT 3
#define ENODE_NULL 0x04UL
#define ROOT_NODE 0x02UL
#define ARANGE_64 3UL
#define LEAF_64 1UL

static bool corrupted;
static struct task_struct *badmm_task, *dag_task;
static struct mm_struct *dag_mm;
static unsigned long dag_pgd;
static struct maple_node *dag_nodes[DAG_NODES + 1];
static struct list_head *saved_module_next;
static struct mod_kallsyms fake_kallsyms;
static struct mod_kallsyms *saved_kallsyms;
static struct path loop_path;
static struct dentry *loop_fake_parent, *loop_saved_parent;

static unsigned long enode(struct maple_node *node, unsigned long type)
{
	return (unsigned long)node | (type << ENODE_TYPE_SHIFT) | ENODE_NULL;
}

static struct task_struct *fake_task(int pid, const char *comm, struct mm_struct *mm,
				     struct task_struct *parent)
{
	struct task_struct *t = kzalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return NULL;
	t->pid = pid;
	t->tgid = pid;
	t->mm = mm;
	t->active_mm = mm;
	t->real_parent = parent;
	t->parent = parent;
	t->group_leader = t;
	strscpy(t->comm, comm, sizeof(t->comm));
	INIT_LIST_HEAD(&t->thread_group);
	list_add_tail_rcu(&t->tasks, &init_task.tasks);
	return t;
}

static void unlink_task(struct task_struct **t)
{
	if (*t) {
		list_del_rcu(&(*t)->tasks);
		synchronize_rcu();
		kfree(*t);
		*t = NULL;
	}
}

/* A DAG of maple_arange_64 nodes over one leaf. */
static int build_dag(void)
{
	int i, j;

	for (i = 0; i <= DAG_NODES; i++) {
		dag_nodes[i] = kzalloc(sizeof(struct maple_node), GFP_KERNEL);
		if (!dag_nodes[i])
			return -ENOMEM;
	}
	for (i = 0; i < DAG_NODES; i++) {
		struct maple_arange_64 *n = &dag_nodes[i]->ma64;
		bool last = i == DAG_NODES - 1;

		for (j = 0; j < MAPLE_ARANGE64_SLOTS; j++) {
			if (j < MAPLE_ARANGE64_SLOTS - 1)
				n->pivot[j] = (j + 1) * 0x1000UL - 1;
			n->slot[j] = (void *)enode(dag_nodes[i + 1], last ? LEAF_64 : ARANGE_64);
		}
		n->meta.end = MAPLE_ARANGE64_SLOTS - 1;
	}
	/* The leaf: nothing but gaps. */
	dag_mm = kzalloc(sizeof(*dag_mm) + 4096, GFP_KERNEL);
	dag_pgd = get_zeroed_page(GFP_KERNEL);
	if (!dag_mm || !dag_pgd)
		return -ENOMEM;
	dag_mm->pgd = (pgd_t *)dag_pgd;
	dag_mm->mm_mt.ma_root = (void *)(enode(dag_nodes[0], ARANGE_64) | ROOT_NODE);
	return 0;
}

static void free_dag(void)
{
	int i;

	for (i = 0; i <= DAG_NODES; i++) {
		kfree(dag_nodes[i]);
		dag_nodes[i] = NULL;
	}
	kfree(dag_mm);
	dag_mm = NULL;
	if (dag_pgd)
		free_page(dag_pgd);
	dag_pgd = 0;
}

static int loop_dentry(void)
{
	struct dentry *d;
	int err = kern_path(LOOP_FILE, 0, &loop_path);

	if (err)
		return err;
	d = loop_path.dentry;
	loop_fake_parent = kzalloc(sizeof(*loop_fake_parent), GFP_KERNEL);
	if (!loop_fake_parent) {
		path_put(&loop_path);
		return -ENOMEM;
	}
	loop_fake_parent->d_name.name = (const unsigned char *)"loop";
	loop_fake_parent->d_name.len = 4;
	loop_fake_parent->d_parent = d;
	loop_saved_parent = d->d_parent;
	WRITE_ONCE(d->d_parent, loop_fake_parent);
	return 0;
}

static void unloop_dentry(void)
{
	if (loop_fake_parent) {
		WRITE_ONCE(loop_path.dentry->d_parent, loop_saved_parent);
		path_put(&loop_path);
		kfree(loop_fake_parent);
		loop_fake_parent = NULL;
	}
}

static void restore(void)
{
	if (!corrupted)
		return;
	unloop_dentry();
	if (saved_kallsyms) {
		WRITE_ONCE(THIS_MODULE->kallsyms, saved_kallsyms);
		saved_kallsyms = NULL;
	}
	if (saved_module_next) {
		WRITE_ONCE(THIS_MODULE->list.next, saved_module_next);
		saved_module_next = NULL;
	}
	unlink_task(&dag_task);
	unlink_task(&badmm_task);
	free_dag();
	corrupted = false;
	pr_info("pyrebox_corrupt: restored\n");
}

static int corrupt(void)
{
	int err;

	if (corrupted)
		return 0;
	corrupted = true;
	err = build_dag();
	if (err)
		goto fail;
	err = loop_dentry();
	if (err)
		goto fail;
	badmm_task = fake_task(BADMM_PID, "pyrebox_badmm",
			       (struct mm_struct *)0xffffdead00000000UL,
			       (struct task_struct *)0x4141414141414141UL);
	dag_task = fake_task(DAG_PID, "pyrebox_dag", dag_mm, &init_task);
	if (!badmm_task || !dag_task) {
		err = -ENOMEM;
		goto fail;
	}
	saved_kallsyms = THIS_MODULE->kallsyms;
	fake_kallsyms = *saved_kallsyms;
	fake_kallsyms.num_symtab = 1U << 20;
	WRITE_ONCE(THIS_MODULE->kallsyms, &fake_kallsyms);
	saved_module_next = THIS_MODULE->list.next;
	WRITE_ONCE(THIS_MODULE->list.next, &THIS_MODULE->list);
	pr_info("pyrebox_corrupt: corrupted\n");
	return 0;
fail:
	restore();
	return err;
}

static ssize_t control_write(struct file *file, const char __user *buf, size_t len,
			     loff_t *off)
{
	char c;
	int err = 0;

	if (len < 1 || get_user(c, buf))
		return -EFAULT;
	if (c == '1')
		err = corrupt();
	else if (c == '0')
		restore();
	else
		return -EINVAL;
	return err ? err : len;
}

static const struct proc_ops control_ops = {
	.proc_write = control_write,
};

static struct proc_dir_entry *control;

static int __init pyrebox_corrupt_init(void)
{
	control = proc_create("pyrebox_corrupt", 0200, NULL, &control_ops);
	return control ? 0 : -ENOMEM;
}

static void __exit pyrebox_corrupt_exit(void)
{
	proc_remove(control);
	restore();
}

module_init(pyrebox_corrupt_init);
module_exit(pyrebox_corrupt_exit);
